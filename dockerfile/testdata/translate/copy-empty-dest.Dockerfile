# A destination that expands to nothing copies into the working directory,
# as BuildKit does.
FROM busybox
WORKDIR /w
ARG EMPTY
COPY --link a.txt $EMPTY
