package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// permissionHint turns a "permission denied" on a local repository at path
// into an error that says whose the repository is and what to run: the
// repository of the Debian package belongs to the piosnap user, and an
// administrator who types `piosnap list` is someone else. Other errors are
// returned unchanged.
func (a *app) permissionHint(path string, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	owner := ownerOf(path)
	if owner == "" {
		return fmt.Errorf("%w: run piosnap as the user that owns %s", err, path)
	}
	if u, uerr := user.Current(); uerr == nil && u.Username == owner {
		return fmt.Errorf("%w: %s belongs to you (%s), but a directory in it is not readable: check its permissions", err, path, owner)
	}
	cmd := "COMMAND"
	if a.cmd != nil {
		cmd = a.cmd.name
	}
	return fmt.Errorf("%w: the repository belongs to the user %s; run the command as that user: sudo -u %s piosnap %s …", err, owner, owner, cmd)
}

// ownerOf returns the user name owning path or, when path cannot be seen,
// its nearest ancestor that can; "" if none is found.
func ownerOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	for p := abs; ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return ""
			}
			uid := strconv.FormatUint(uint64(st.Uid), 10)
			if u, err := user.LookupId(uid); err == nil {
				return u.Username
			}
			return uid
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
