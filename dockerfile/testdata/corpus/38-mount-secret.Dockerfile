FROM busybox
RUN --mount=type=secret,id=token cat /run/secrets/token
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,required=true true
RUN --mount=type=secret,id=API_KEY,env=API_KEY true
