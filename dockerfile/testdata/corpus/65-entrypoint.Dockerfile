FROM busybox AS a
CMD ["a"]
FROM a AS b
ENTRYPOINT ["/bin/echo"]
FROM a
CMD ["c"]
ENTRYPOINT ["/bin/echo"]
