# escape=`
FROM busybox
RUN echo one `
    two
COPY app.txt /app/
