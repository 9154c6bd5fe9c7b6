FROM busybox
RUN echo crlf > /crlf \
    && echo more >> /crlf
ENV A=1
COPY app.txt /app.txt
