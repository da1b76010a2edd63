//go:build !unix

package daemon

import "os"

// processAlive reports whether a process with pid exists. Outside Unix it
// can only tell that the PID was once valid.
func processAlive(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}
