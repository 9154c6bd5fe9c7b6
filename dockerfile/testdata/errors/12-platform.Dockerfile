FROM --platform=linux/s390x busybox
RUN true
