FROM busybox
RUN adduser -D app
USER app
RUN id -u
USER root:root
