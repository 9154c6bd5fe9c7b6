package mount

import (
	"errors"
	"strings"
	"time"
)

var time0 = time.Unix(0, 0)

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
