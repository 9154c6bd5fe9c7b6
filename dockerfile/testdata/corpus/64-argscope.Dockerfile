ARG V=global
FROM busybox
RUN echo "[$V]" > /nov
ARG V
RUN echo "[$V]" > /v
ARG V=local
RUN echo "[$V]" > /v2
ENV V=env
ARG V=ignored
RUN echo "[$V]" > /v3
