FROM busybox
RUN cat > /conf.txt <<CONF
key=value
CONF
