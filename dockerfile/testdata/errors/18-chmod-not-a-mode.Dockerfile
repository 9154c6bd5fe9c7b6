FROM busybox
COPY --chmod=0x1ed app.txt /a
