# COPY --from with heredoc sources: the heredocs are copied along with
# the file from the other stage.
FROM busybox AS one
RUN echo from-one > /file
FROM busybox
COPY --from=one /file <<a.txt <<b.txt /dst/
first
a.txt
second
b.txt
