FROM busybox
RUN mkdir -p /a \
    && echo one > /a/1 \
    && echo two > /a/2
