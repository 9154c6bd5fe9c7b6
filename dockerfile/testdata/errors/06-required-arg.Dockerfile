FROM busybox
ARG X
ENV Y="${X:?X must be set}"
