# args: WHICH=b
ARG WHICH=a
FROM busybox AS a
RUN echo a
FROM busybox AS b
RUN echo b
FROM ${WHICH}
RUN echo final
