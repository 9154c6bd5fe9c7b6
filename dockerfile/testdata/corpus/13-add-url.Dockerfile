FROM busybox
ADD https://example.invalid/tool.tar.gz /opt/
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 http://example.invalid/x /x
