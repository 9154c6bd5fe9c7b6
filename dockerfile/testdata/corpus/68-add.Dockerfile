FROM busybox
ADD app.txt /added/
ADD --chown=3:4 files.tar /t/
ADD run.sh /bin/run
