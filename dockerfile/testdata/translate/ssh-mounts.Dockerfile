# An ssh agent mount with BuildKit's defaults (id default, the socket at
# /run/buildkit/ssh_agent.0), a second one with its own id and target, and
# a required one.
FROM busybox
RUN --mount=type=ssh ssh-add -l
RUN --mount=type=ssh --mount=type=ssh,id=deploy,target=/run/deploy.sock ls /run
RUN --mount=type=ssh,id=ci,required=true true
