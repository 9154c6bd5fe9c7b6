# syntax=docker/dockerfile:1.7
FROM busybox AS runtime
LABEL org.opencontainers.image.source=https://example.invalid/repo
EXPOSE 8080/tcp 9090
VOLUME ["/var/lib/app"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD ["wget", "-q", "-O-", "http://127.0.0.1:8080/health"]
ONBUILD RUN echo child build
USER 65534:65534
WORKDIR /srv
ENTRYPOINT ["/bin/httpd", "-f"]
CMD ["-p", "8080"]
