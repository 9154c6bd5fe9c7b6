# platform: linux/arm64
# The cross-build pattern: a build stage for the build platform (native),
# the final stage for the target; TARGETARCH is the target's in both.
FROM --platform=$BUILDPLATFORM busybox AS build
ARG TARGETARCH
RUN echo "for $TARGETARCH" > /out

FROM --platform=linux/s390x busybox AS other
RUN true

FROM busybox
COPY --from=build /out /out
