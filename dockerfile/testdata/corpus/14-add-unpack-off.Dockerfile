FROM busybox
ADD --unpack=false files.tar /kept/
