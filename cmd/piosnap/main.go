// Command piosnap keeps scheduled, deduplicated snapshots of a Pioreactor
// cluster's ~/.pioreactor directories and restores any of them on request.
//
// Run `piosnap help` for the commands, and see README.md.
package main

import (
	"context"
	"os"
	"runtime/debug"
)

// memoryLimit is the soft heap limit piosnap gives the Go runtime unless
// $GOMEMLIMIT sets another: backups stream in constant memory, and a
// Raspberry Pi leader has little to spare, so the collector should run
// before the heap grows rather than after.
const memoryLimit = 96 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(Main(context.Background(), os.Args[1:], Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
	}))
}
