// Command piosnap keeps scheduled, deduplicated snapshots of a Pioreactor
// cluster's ~/.pioreactor directories and restores any of them on request.
//
// Run `piosnap help` for the commands, and see README.md.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
	}))
}
