FROM busybox
COPY --exclude=*.tmp --exclude=cache/ dir /dir
