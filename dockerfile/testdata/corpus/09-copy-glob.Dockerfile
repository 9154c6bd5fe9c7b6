FROM busybox
COPY *.txt /texts/
COPY dir/*.conf /etc/app/
