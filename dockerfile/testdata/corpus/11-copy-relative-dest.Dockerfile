FROM busybox
WORKDIR /work
COPY app.txt .
COPY dir sub/
