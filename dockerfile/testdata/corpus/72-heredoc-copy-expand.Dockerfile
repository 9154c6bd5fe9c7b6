# An unquoted heredoc body is expanded as text: quotes stay as written and
# variables inside them are expanded; a quoted one is copied as written.
FROM busybox
ARG name=world
COPY <<EOT /greeting
Hello '${name}'!
Hello "${name}"!
Hello ${name}!
EOT
COPY <<"EOT" /literal
Hello '${name}'!
EOT
