FROM busybox
CMD echo shell form
ENTRYPOINT exec /bin/sh
