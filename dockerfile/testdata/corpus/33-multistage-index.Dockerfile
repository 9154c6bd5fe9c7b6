FROM busybox
RUN echo zero > /zero
FROM busybox
COPY --from=0 /zero /copied
