FROM busybox AS x
FROM busybox AS x
