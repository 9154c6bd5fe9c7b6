FROM busybox
ADD --chmod=0755 https://example.invalid/bin/tool /usr/local/bin/tool
ADD --link --unpack=true files.tar /opt/files/
ADD app.txt dir/ /bundle/
