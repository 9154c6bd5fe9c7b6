# target: tools
# args: VERSION=9
FROM busybox AS deps
RUN echo deps > /deps
FROM deps AS tools
ARG VERSION=1
RUN echo tools $VERSION > /tools
FROM tools AS final
RUN echo final
