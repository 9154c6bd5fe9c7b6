FROM busybox
ADD https://example.com/team/repo.git /src
