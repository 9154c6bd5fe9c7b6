FROM busybox
COPY <<EOF /etc/greeting
hello $NAME
EOF
ARG NAME=world
COPY <<-EOT /etc/expanded
	hi ${NAME}
	EOT
