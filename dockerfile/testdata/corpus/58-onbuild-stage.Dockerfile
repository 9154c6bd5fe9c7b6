FROM busybox AS parent
ONBUILD RUN echo triggered > /trig
ONBUILD ENV FROM_PARENT=1
FROM parent
RUN cat /trig
ONBUILD RUN echo grandchild
