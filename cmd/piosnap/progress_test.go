package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestStepProgressLine(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		total int64
		n     int64
		after time.Duration
		want  string
	}{
		{"bar with rate and time left", 100 << 20, 25 << 20, 10 * time.Second,
			"uploading [=====               ]  25% 25.0 MiB of 100.0 MiB, 2.5 MiB/s, 30s left"},
		{"done", 100 << 20, 100 << 20, 20 * time.Second,
			"uploading [====================] 100% 100.0 MiB of 100.0 MiB, 5.0 MiB/s"},
		{"unknown total: a counter", 0, 3 << 20, 2 * time.Second, "uploading: 3.0 MiB, 1.5 MiB/s, 2s"},
		{"no bytes: the time so far", 0, 0, 75 * time.Second, "uploading: 1m15s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &stepProgress{what: "uploading", total: tt.total, start: t0, n: tt.n}
			if got := p.line(t0.Add(tt.after)); got != tt.want {
				t.Errorf("line = %q\nwant   %q", got, tt.want)
			}
		})
	}
}

func TestStepProgressDraws(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &stepProgress{w: &buf, on: true, what: "pulling", start: now, now: func() time.Time { return now }}
	p.add(1 << 20)
	now = now.Add(100 * time.Millisecond)
	p.add(1 << 20) // within 200 ms of the last drawing: not drawn
	now = now.Add(time.Second)
	p.add(1 << 20)
	if got := strings.Count(buf.String(), "\rpulling"); got != 2 {
		t.Errorf("drawn %d times, want 2:\n%q", got, buf.String())
	}
	if !strings.Contains(buf.String(), "pulling: 3.0 MiB") {
		t.Errorf("last drawing lacks the count: %q", buf.String())
	}
	if took := p.took(); took != 1100*time.Millisecond {
		t.Errorf("took = %v, want 1.1s", took)
	}
	if !strings.HasSuffix(buf.String(), "\r"+strings.Repeat(" ", 79)+"\r") {
		t.Errorf("took did not clear the line: %q", buf.String())
	}

	// Not a terminal: nothing is drawn, took still measures.
	var pipe bytes.Buffer
	q := newStep(&pipe, "pulling", 0)
	q.add(5 << 20)
	q.tick()
	stop := q.tickEvery(time.Millisecond)
	stop()
	if q.took() < 0 || pipe.Len() != 0 {
		t.Errorf("drew %q on a pipe", pipe.String())
	}
}
