FROM busybox
SHELL ["/bin/sh", "-ec"]
RUN echo with -e
CMD echo also wrapped
