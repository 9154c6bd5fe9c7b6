// Package strata builds OCI container images rootless from image
// definitions written in Go. The API is in package builder; see the README.
package strata
