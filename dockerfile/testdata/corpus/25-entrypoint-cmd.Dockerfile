FROM busybox
ENTRYPOINT ["/bin/echo"]
CMD ["hello"]
