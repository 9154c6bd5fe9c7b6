FROM busybox
RUN --network=none echo offline
RUN --network=host echo host
RUN --device=nvidia.com/gpu=all nvidia-smi
