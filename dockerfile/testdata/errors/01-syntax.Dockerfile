FROM busybox
RUN echo ok
COPY
