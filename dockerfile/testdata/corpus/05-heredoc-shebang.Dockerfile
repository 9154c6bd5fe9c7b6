FROM busybox
RUN <<EOT
#!/bin/sh
echo from-shebang > /shebang
EOT
