FROM busybox AS build
RUN mkdir -p /out && echo bin > /out/tool
FROM scratch
COPY --link --from=build /out/tool /tool
COPY --from=build --chmod=0555 /out /out
