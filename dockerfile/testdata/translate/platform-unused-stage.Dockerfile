# A stage for another platform that the target does not need: not built,
# so not refused (BuildKit builds the target alone too).
FROM --platform=linux/s390x busybox AS cross
RUN echo never built

FROM busybox
RUN echo host
