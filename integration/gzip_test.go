package integration

import (
	"compress/gzip"
	"io"
)

func newGzip(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
