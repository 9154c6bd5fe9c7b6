FROM busybox
RUN <<ONE cat - <<TWO > /combined
first
ONE
second
TWO
COPY <<-EOT /etc/motd
	Welcome
	EOT
