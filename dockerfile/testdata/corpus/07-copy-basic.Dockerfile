FROM busybox
COPY app.txt /app/
COPY dir /srv/dir
