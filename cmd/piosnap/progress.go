package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/piosnap/piosnap/scheduler/web"
)

// stepProgress shows one long step of a command (pulling an archive,
// waiting for a reboot, verifying) on a terminal: a line redrawn at most five
// times a second with the bytes so far, the rate and, when the total is
// known, a bar and an estimate of the time left; a step without bytes shows
// how long it has been running. Elsewhere (a pipe, the journal) it draws
// nothing, and the command prints one line per finished step with its
// duration (took).
type stepProgress struct {
	w     io.Writer
	on    bool
	what  string
	total int64 // 0: unknown
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	n     int64
	last  time.Time
	drawn bool
}

// newStep starts a step named what ("pulling leader1") whose size is total
// bytes (0 if unknown), drawn on w when w is a terminal.
func newStep(w io.Writer, what string, total int64) *stepProgress {
	return &stepProgress{w: w, on: isTerminal(w), what: what, total: total, start: time.Now(), now: time.Now}
}

// add counts n more bytes; it may be called from any goroutine.
func (p *stepProgress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
	p.draw(false)
}

// tick redraws the elapsed time of a step that counts no bytes.
func (p *stepProgress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(false)
}

// tickEvery redraws the step every d until the returned stop is called.
func (p *stepProgress) tickEvery(d time.Duration) (stop func()) {
	if !p.on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.tick()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// took ends the step: it clears the terminal line and returns the step's
// duration, for the line the command prints about the step.
func (p *stepProgress) took() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 79))
		p.drawn = false
	}
	p.on = false
	return p.now().Sub(p.start).Round(100 * time.Millisecond)
}

// line returns the text of the progress line; draw writes it.
func (p *stepProgress) line(now time.Time) string {
	el := now.Sub(p.start)
	secs := max(el.Seconds(), 1e-3)
	var b strings.Builder
	b.WriteString(p.what)
	switch {
	case p.total > 0:
		const width = 20
		frac := min(float64(p.n)/float64(p.total), 1)
		k := int(frac * width)
		fmt.Fprintf(&b, " [%s%s] %3.0f%% %s of %s, %s/s", strings.Repeat("=", k), strings.Repeat(" ", width-k), frac*100,
			web.HumanBytes(p.n), web.HumanBytes(p.total), web.HumanBytes(int64(float64(p.n)/secs)))
		if p.n > 0 && p.n < p.total {
			left := time.Duration(float64(p.total-p.n) / (float64(p.n) / secs) * float64(time.Second))
			fmt.Fprintf(&b, ", %s left", left.Round(time.Second))
		}
	case p.n > 0:
		fmt.Fprintf(&b, ": %s, %s/s, %s", web.HumanBytes(p.n), web.HumanBytes(int64(float64(p.n)/secs)), el.Round(time.Second))
	default:
		fmt.Fprintf(&b, ": %s", el.Round(time.Second))
	}
	return b.String()
}

func (p *stepProgress) draw(force bool) {
	if !p.on {
		return
	}
	now := p.now()
	if !force && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	p.drawn = true
	fmt.Fprintf(p.w, "\r%-79s", p.line(now))
}

// progress draws an upload progress bar on a terminal and nothing elsewhere.
type progress struct {
	w     io.Writer
	on    bool
	unit  string
	total int64

	mu    sync.Mutex
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, unit string, total int64) *progress {
	return &progress{w: w, on: isTerminal(w), unit: unit, total: total}
}

// update is called from the sending goroutine with the bytes sent so far.
func (p *progress) update(sent int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if sent < p.total && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.drawn = true
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(sent) / float64(p.total)
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\ruploading to %s [%s%s] %3.0f%% %s of %s ", p.unit,
		strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, web.HumanBytes(sent), web.HumanBytes(p.total))
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
