FROM busybox
RUN echo hello > /hello
