# target: test
FROM busybox AS base
RUN echo base > /base
FROM base AS test
RUN cat /base
FROM base AS release
RUN echo release
