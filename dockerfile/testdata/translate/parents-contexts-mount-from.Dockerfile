# contexts: assets
# A stage, a named build context and an image, each read by COPY --from
# and by a bind mount; COPY --parents; ADD --keep-git-dir.
FROM busybox AS build
RUN mkdir -p /out && echo built > /out/a

FROM busybox
COPY --parents src/./app/main.py lib/*.py /dst/
ADD --keep-git-dir=true vendor.tar /vendor/
COPY --from=assets /logo.png /static/
COPY --from=build /out /out
COPY --from=registry.example.com/tools:1.2 /bin/tool /usr/local/bin/
RUN --mount=type=bind,from=build,source=/out,target=/mnt/out cat /mnt/out/a
RUN --mount=type=bind,from=assets,target=/assets ls /assets
RUN --mount=type=bind,from=registry.example.com/tools:1.2,source=/bin,target=/tools ls /tools
