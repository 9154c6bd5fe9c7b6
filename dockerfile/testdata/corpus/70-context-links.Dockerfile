FROM busybox
COPY . /ctx
COPY dir/alink.conf /followed.conf
COPY linkdir /via-linkdir
ADD files.tar.gz /gz/
RUN echo one \
  # a comment inside a continuation
  && echo two > /two
EXPOSE 80/udp 443
ARG PORT=8080
EXPOSE $PORT
