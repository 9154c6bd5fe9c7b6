FROM busybox
ARG CACHE_ID=apt
RUN --mount=type=cache,id=${CACHE_ID},target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    --mount=type=secret,id=aptauth,target=/etc/apt/auth.conf \
    --mount=type=bind,source=app.txt,target=/mnt/app.txt \
    echo installing
