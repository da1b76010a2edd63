package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPermissionDeniedSaysWhatToRun runs piosnap as another user than the
// one owning the repository, as an administrator would after installing the
// Debian package, and checks that the error names the owner and the command
// to run. As root it runs the binary as nobody; as anyone else it makes the
// state directory unreadable for its owner.
func TestPermissionDeniedSaysWhatToRun(t *testing.T) {
	bin := buildPiosnap(t)
	dir, err := os.MkdirTemp("", "piosnap-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(filepath.Join(dir, "state"), 0o700)
		os.RemoveAll(dir)
	})
	// nobody must reach the binary, the config file and the state
	// directory itself (t.TempDir's directories are private).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "piosnap")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "piosnap.toml")
	cfg := "zone = \"UTC\"\n[pioreactor]\nleader = \"localhost:1\"\n[[store]]\nname = \"local\"\npath = \"" + filepath.Join(state, "repo") + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runMain(t, "-c", cfgPath, "init"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	cmd := binCommand(bin, "-c", cfgPath, "list")
	want := "sudo -u root piosnap list"
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		if err := os.Chmod(state, 0o000); err != nil {
			t.Fatal(err)
		}
		want = "belongs to you"
	}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != exitFailure {
		t.Fatalf("list as another user: exit %d (%v), want %d:\n%s", code, err, exitFailure, out)
	}
	if !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), want) {
		t.Errorf("error lacks %q:\n%s", want, out)
	}
}

func TestOwnerOf(t *testing.T) {
	if got := ownerOf(filepath.Join(t.TempDir(), "missing", "repo")); got == "" {
		t.Error("ownerOf found no owner for a path below an existing directory")
	}
	if _, err := exec.LookPath("id"); err == nil {
		out, _ := exec.Command("id", "-un").Output()
		if got, want := ownerOf(t.TempDir()), strings.TrimSpace(string(out)); got != want {
			t.Errorf("ownerOf(TempDir) = %q, want %q", got, want)
		}
	}
}
