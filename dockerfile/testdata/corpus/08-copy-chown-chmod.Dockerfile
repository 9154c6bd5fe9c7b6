FROM busybox
COPY --chown=1000:1000 --chmod=0640 app.txt /app/app.txt
COPY --chmod=755 run.sh /usr/local/bin/
