FROM busybox
RUN mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
WORKDIR /data/sub/deeper
RUN touch made-by-user && ls -ln > /tmp/listing
USER root
WORKDIR /rootdir
