# args: TAG=1.36
ARG TAG=latest
ARG BASE=busybox
FROM ${BASE}:${TAG}
ARG TAG
RUN echo $TAG
