FROM busybox
RUN --mount=type=ssh,mode=0666 git clone git@example.com:x.git
