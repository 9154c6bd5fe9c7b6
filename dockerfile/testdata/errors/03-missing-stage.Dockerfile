# target: nope
FROM busybox AS build
RUN true
