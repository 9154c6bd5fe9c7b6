FROM busybox AS src
RUN mkdir -p /out && echo built > /out/built.txt
FROM busybox
COPY --chown=7:8 app.txt /newparent/sub/app.txt
COPY --chown=7:8 dir /np2/deeper/
COPY --chown=9:9 --from=src /out /np3/x/
ADD --chown=5:5 files.tar /np4/y/
COPY ["app.txt", "notes.txt", "/multi/"]
COPY dir/sub /d3
