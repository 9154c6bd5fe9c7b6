FROM busybox AS build
ARG SRC=build
FROM busybox
ARG SRC=build
COPY --from=$SRC /bin/sh /sh
