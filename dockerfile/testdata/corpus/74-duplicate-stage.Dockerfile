# A stage name used twice builds (BuildKit warns): FROM names the stage of
# that name defined before it, --from the last one.
FROM busybox AS tool
RUN echo first > /which
FROM tool AS tool
RUN echo second >> /which
FROM busybox
COPY --from=tool /which /which
