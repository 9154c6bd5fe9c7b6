# Several sources and a destination without a trailing slash: they go into
# that directory (BuildKit copies into it when it exists).
FROM busybox
RUN mkdir /exists
COPY app.txt notes.txt /exists
COPY app.txt dir/a.* /multi
