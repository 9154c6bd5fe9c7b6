FROM busybox
COPY --chmod=u+x app.txt /a
