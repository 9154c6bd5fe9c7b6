# target: one
FROM busybox AS one
COPY --from=two /x /x
FROM busybox AS two
RUN true
