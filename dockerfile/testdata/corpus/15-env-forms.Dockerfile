FROM busybox
ENV A=1 B="two words"
ENV C $A-suffix
ENV D=${B:-unset} E=${MISSING:-dflt}
