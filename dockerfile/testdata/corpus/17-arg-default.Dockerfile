FROM busybox
ARG VERSION=1.0
RUN echo $VERSION > /version
ENV V=${VERSION}
