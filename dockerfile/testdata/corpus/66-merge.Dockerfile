FROM busybox
COPY dir /merge/
COPY dir/sub /merge/
RUN mkdir -p /x/y && echo old > /x/y/f
COPY app.txt /x/y/f
COPY dir /x/y/
