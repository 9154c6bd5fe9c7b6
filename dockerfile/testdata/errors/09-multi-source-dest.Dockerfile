FROM busybox
COPY a.txt b.txt /dest
