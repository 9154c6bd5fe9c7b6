FROM busybox AS one
ENV STAGE=one
WORKDIR /one
FROM one AS two
RUN echo $STAGE in $(pwd)
COPY app.txt rel/
