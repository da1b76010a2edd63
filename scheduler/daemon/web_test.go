package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/config"
	"github.com/piosnap/piosnap/scheduler/web"
)

// A backup run and a web restore wait for each other, and waiting ends
// with the context.
func TestDaemonBusy(t *testing.T) {
	d := &Daemon{busy: make(chan struct{}, 1)}
	release, err := d.acquire(context.Background(), func() { t.Error("waited for a free daemon") })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waited := false
	if _, err := d.acquire(ctx, func() { waited = true }); err != context.Canceled || !waited {
		t.Fatalf("acquire while busy: %v (waited %v), want the context's error after waiting", err, waited)
	}
	waiting := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		r, err := d.acquire(context.Background(), func() { close(waiting) })
		if err == nil {
			r()
		}
		got <- err
	}()
	<-waiting
	release()
	if err := <-got; err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

// The daemon's Restorer refuses a configured directory source even when
// the pages did not (a source with no version yet), before waiting for a
// busy daemon and before asking the command line for anything.
func TestDaemonWebRefusesDirRestore(t *testing.T) {
	cfg, err := config.Parse(fmt.Sprintf("[[store]]\npath = %q\n[[source]]\nkind = \"dir\"\nname = \"cells\"\npaths = [%q]\n",
		t.TempDir(), filepath.Join(t.TempDir(), "cells")))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		opts: Options{App: func(*config.Config, *slog.Logger) App { return nil }}, // a call would panic
		cfg:  cfg, log: slog.New(slog.DiscardHandler), busy: make(chan struct{}, 1),
	}
	d.busy <- struct{}{} // a backup runs: a restore that got past the check would wait
	dw := &daemonWeb{d: d}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := web.RestoreRequest{Unit: "cells", Store: "local", Version: strings.Repeat("ab", 32)}
	if _, err := dw.DryRun(ctx, req); err == nil || !strings.Contains(err.Error(), "sudo piosnap restore --host cells") {
		t.Errorf("DryRun: %v", err)
	}
	if err := dw.Restore(ctx, req, func(web.Event) {}); err == nil || !strings.Contains(err.Error(), "sudo piosnap restore --host cells") {
		t.Errorf("Restore: %v", err)
	}
}

// lineWriter passes on complete, non-blank lines as they are written, and
// the last unfinished one when flushed.
func TestLineWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"one line", []string{"a\n"}, []string{"a"}},
		{"split across writes", []string{"ab", "c\nd", "e\n"}, []string{"abc", "de"}},
		{"blank lines dropped", []string{"\n  \r\nx\r\n"}, []string{"x"}},
		{"unfinished line flushed", []string{"a\nb"}, []string{"a", "b"}},
		{"nothing", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			lw := &lineWriter{say: func(s string) { got = append(got, s) }}
			for _, w := range tc.writes {
				if n, err := lw.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			lw.Flush()
			if !slices.Equal(got, tc.want) {
				t.Errorf("lines %q, want %q", got, tc.want)
			}
		})
	}
}
