# syntax=docker/dockerfile:1
FROM busybox
RUN <<EOF
set -e
echo line1 > /h1
echo line2 >> /h1
EOF
