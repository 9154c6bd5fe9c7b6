# args: A=given
ARG BASE=busybox
FROM ${BASE}
ARG A=default
ARG B
ENV X=${A:-fallback} Y=${B:-unset} Z=${A:+set}
ENV PATH=/opt/bin:$PATH
RUN echo "$X $Y $Z" > /vars && echo $PATH > /path
LABEL description="a \"quoted\" label" multi.word="one two"
