FROM busybox
COPY --link app.txt /linked/
COPY --link --chown=1:1 dir /linked/dir
