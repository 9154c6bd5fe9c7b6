FROM busybox AS b
RUN echo x > /x
FROM scratch
COPY --from=b /x /x
CMD ["/x"]
