from busybox as Base
run echo lower
from base
env x=1
