FROM busybox
RUN echo "svc:x:1234:2345::/home/svc:/bin/sh" >> /etc/passwd && echo "svcgrp:x:2345:" >> /etc/group
COPY --chown=svc:svcgrp app.txt /owned-by-name
COPY --chown=svc app.txt /owned-by-user-only
USER svc
WORKDIR /home/svc/work
RUN id > id.txt
