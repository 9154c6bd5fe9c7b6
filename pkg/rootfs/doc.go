// Package rootfs writes small root filesystem tarballs for tests, demos and
// benchmarks, built from what the host has (Debian's busybox-static). It
// never downloads anything and imports nothing from strata.
package rootfs
