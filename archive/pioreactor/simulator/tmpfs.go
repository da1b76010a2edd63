package simulator

import (
	"io"
	"io/fs"
	"math"
	"path/filepath"
)

// noSpace is Python's text for ENOSPC, which the real endpoints and the
// import task report when a unit's /tmp (a tmpfs in RAM) is full.
const noSpace = "[Errno 28] No space left on device"

type noSpaceError struct{ path string }

func (e noSpaceError) Error() string { return noSpace + ": '" + e.path + "'" }

// tmpFree returns how many more bytes the unit's /tmp holds: its capacity
// (Options.TmpSize, SetTmpSize) less what is in it, or MaxInt64 when the
// capacity is 0.
func (u *Unit) tmpFree() int64 {
	size := u.c.tmpSize.Load()
	if size <= 0 {
		return math.MaxInt64
	}
	return max(size-dirSize(u.tmp), 0)
}

// dirSize returns the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// tmpWriter writes to a file in /tmp and fails as a full tmpfs does once
// more than left bytes are written. Bytes written again after a Seek count
// again, which overstates the use by a few header bytes per ZIP entry.
type tmpWriter struct {
	w    io.Writer
	path string
	left int64
}

// Seek seeks the underlying file, which must be an io.Seeker.
func (t *tmpWriter) Seek(offset int64, whence int) (int64, error) {
	return t.w.(io.Seeker).Seek(offset, whence)
}

func (t *tmpWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > t.left {
		n, _ := t.w.Write(p[:t.left])
		t.left = 0
		return n, noSpaceError{t.path}
	}
	n, err := t.w.Write(p)
	t.left -= int64(n)
	return n, err
}
