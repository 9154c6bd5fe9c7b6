FROM busybox AS build
RUN echo built > /artifact

FROM busybox
COPY --from=build /artifact /artifact
