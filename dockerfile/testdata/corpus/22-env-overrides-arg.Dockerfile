# args: MODE=arg
FROM busybox
ARG MODE
ENV MODE=env
RUN echo $MODE
COPY app.txt /$MODE/
