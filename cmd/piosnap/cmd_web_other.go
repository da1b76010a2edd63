//go:build !linux

package main

import (
	"errors"
	"os"
)

// noEcho is not available outside Linux: use `piosnap web passwd --stdin`.
func noEcho(*os.File) (func(), error) {
	return nil, errors.New("hidden input needs Linux: pipe the password into `piosnap web passwd --stdin`")
}
