FROM busybox AS unused
RUN exit 1
FROM busybox AS used
RUN echo used > /u
FROM busybox
COPY --from=used /u /u
