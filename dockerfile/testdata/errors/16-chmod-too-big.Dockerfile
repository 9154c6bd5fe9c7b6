FROM busybox
COPY --chmod=10000 app.txt /a
