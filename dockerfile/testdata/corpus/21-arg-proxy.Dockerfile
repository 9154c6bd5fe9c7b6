# args: HTTP_PROXY=http://proxy.invalid:3128 no_proxy=localhost
FROM busybox
RUN echo uses the proxy
