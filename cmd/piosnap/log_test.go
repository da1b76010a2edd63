package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSyslogPriority(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  int
	}{
		{slog.LevelDebug - 4, 7},
		{slog.LevelDebug, 7},
		{slog.LevelInfo, 6},
		{slog.LevelInfo + 2, 6},
		{slog.LevelWarn, 4},
		{slog.LevelError, 3},
		{slog.LevelError + 4, 3},
	}
	for _, tt := range tests {
		if got := syslogPriority(tt.level); got != tt.want {
			t.Errorf("syslogPriority(%v) = %d, want %d", tt.level, got, tt.want)
		}
	}
}

// journalFile returns a file standing in for the journal's stream and the
// $JOURNAL_STREAM value that names it.
func journalFile(t *testing.T) (*os.File, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return f, fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestLoggerJournalPriorities(t *testing.T) {
	for _, format := range []string{"auto", "text", "json"} {
		t.Run(format, func(t *testing.T) {
			f, stream := journalFile(t)
			env := map[string]string{"JOURNAL_STREAM": stream}
			log := newLogger(f, func(k string) string { return env[k] }, format, "debug")
			log.Debug("d")
			log.With("run", "r1").Info("i", "host", "worker1")
			log.WithGroup("g").Warn("w")
			log.Error("e", "err", "line one\nline two")
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			want := []string{"<7>", "<6>", "<4>", "<3>"}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d (a message must stay on one line):\n%s", len(lines), len(want), b)
			}
			for i, l := range lines {
				if !strings.HasPrefix(l, want[i]) || strings.Count(l, "<") > 1 && strings.HasPrefix(l[3:], "<") {
					t.Errorf("line %d = %q, want one prefix %s", i, l, want[i])
				}
				if format == "auto" && strings.Contains(l, "time=") || strings.Contains(l, "\x1b[") {
					t.Errorf("line %d = %q: no timestamp or colour in the journal", i, l)
				}
			}
			if !strings.Contains(lines[1], "run=r1") && !strings.Contains(lines[1], `"run":"r1"`) {
				t.Errorf("attributes lost: %q", lines[1])
			}
		})
	}
}

func TestLoggerNotJournal(t *testing.T) {
	tests := []struct {
		name   string
		stream func(own, other string) string
	}{
		{"no JOURNAL_STREAM", func(own, other string) string { return "" }},
		{"stream names another file", func(own, other string) string { return other }},
		{"garbage", func(own, other string) string { return "journal" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, own := journalFile(t)
			_, other := journalFile(t)
			stream := tt.stream(own, other)
			log := newLogger(f, func(k string) string {
				if k == "JOURNAL_STREAM" {
					return stream
				}
				return ""
			}, "auto", "info")
			log.Warn("w")
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), "level=WARN msg=w") {
				t.Errorf("got %q, want a plain line without a priority prefix", b)
			}
		})
	}
}
