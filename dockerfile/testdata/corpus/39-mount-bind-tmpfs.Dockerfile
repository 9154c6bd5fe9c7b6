FROM busybox
RUN --mount=type=bind,source=dir,target=/mnt/dir cat /mnt/dir/a.conf
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x
