# args: https_proxy=http://proxy.invalid:3128 NO_PROXY=.invalid
FROM busybox
SHELL ["/bin/sh", "-eux", "-c"]
RUN wget -q -O /dev/null http://example.invalid || true
ENTRYPOINT echo wrapped by the shell
