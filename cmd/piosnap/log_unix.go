//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// isJournalStream reports whether w is the file that $JOURNAL_STREAM
// (stream, "DEVICE:INODE") names: systemd sets it for a service whose
// output goes to the journal, and a child that redirects its stderr
// elsewhere keeps the variable but not the stream.
func isJournalStream(w io.Writer, stream string) bool {
	f, ok := w.(*os.File)
	if stream == "" || !ok {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(stream, "%d:%d", &dev, &ino); n != 2 || err != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
