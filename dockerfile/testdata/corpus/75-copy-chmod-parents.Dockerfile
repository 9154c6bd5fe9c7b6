# COPY --chmod gives the directories it creates the requested mode too.
FROM busybox
COPY --chmod=0750 app.txt /opt/new/dir/app.txt
COPY --chmod=0700 dir /srv/tree
