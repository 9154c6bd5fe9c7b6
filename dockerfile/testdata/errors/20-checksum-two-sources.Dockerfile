FROM busybox
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 http://example.invalid/a http://example.invalid/b /d/
