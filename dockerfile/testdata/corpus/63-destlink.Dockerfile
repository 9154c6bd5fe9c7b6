FROM busybox
RUN mkdir -p /real && ln -s /real /link && ln -s real /rel
COPY app.txt /link/
COPY app.txt /rel/app2.txt
WORKDIR /link
RUN pwd > /pwd
