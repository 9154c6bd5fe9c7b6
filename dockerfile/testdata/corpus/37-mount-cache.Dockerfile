FROM busybox
RUN --mount=type=cache,target=/root/.cache ls /root/.cache
RUN --mount=type=cache,id=pip,target=/pip,sharing=locked echo locked
RUN --mount=type=cache,target=/p,sharing=private,uid=1000,gid=1000,mode=0700 true
