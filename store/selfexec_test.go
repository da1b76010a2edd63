package store_test

import (
	"os"
	"os/exec"
)

// selfCommand runs this test binary again with args. When
// $PIOSNAP_TEST_EXEC is set (make arm64 and make armv7 run the tests under
// qemu), the child runs through it too: without binfmt_misc the kernel
// cannot execute the foreign binary itself.
func selfCommand(args ...string) *exec.Cmd {
	if wrap := os.Getenv("PIOSNAP_TEST_EXEC"); wrap != "" {
		return exec.Command(wrap, append([]string{os.Args[0]}, args...)...)
	}
	return exec.Command(os.Args[0], args...)
}
