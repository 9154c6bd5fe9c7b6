FROM busybox
LABEL org.opencontainers.image.title="demo" version=1
LABEL "quoted key"="v"
MAINTAINER someone@example.com
