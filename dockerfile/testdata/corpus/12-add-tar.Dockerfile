FROM busybox
ADD files.tar /unpacked/
ADD --chown=2:2 files.tar /owned/
