FROM busybox
COPY --from=registry.example.com/tools/bin:1.0 /bin/tool /usr/local/bin/tool
