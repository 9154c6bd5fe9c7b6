# escape=`
FROM busybox
ENV DIR=C:\data
RUN echo first `
    second `
    third
COPY --link app.txt /app/
