FROM busybox
COPY ../secret /x
