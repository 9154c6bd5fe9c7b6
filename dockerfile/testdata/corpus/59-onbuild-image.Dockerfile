FROM onbuild-image
RUN ls /app
