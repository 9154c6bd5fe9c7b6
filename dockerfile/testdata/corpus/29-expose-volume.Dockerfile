FROM busybox
EXPOSE 80 443/tcp 53/udp
VOLUME /data
VOLUME ["/cache", "/logs"]
