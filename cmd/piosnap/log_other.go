//go:build !unix

package main

import "io"

// isJournalStream reports false: the journal exists only on Linux.
func isJournalStream(w io.Writer, stream string) bool { return false }
