package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/lmittmann/tint"
)

// newLogger builds the logger for format ("auto", "text", "json") and level,
// writing to w. getenv reads the environment:
//
//   - "auto" means colours on a terminal (none when $NO_COLOR is set) and,
//     anywhere else, plain key=value lines without a timestamp, since the
//     journal adds its own.
//   - When $JOURNAL_STREAM names w (systemd connected it to the journal),
//     every line starts with its syslog priority as sd-daemon(3) describes
//     (<3> error, <4> warning, <6> info, <7> debug), so that
//     `journalctl -p warning` shows the warnings and errors.
func newLogger(w io.Writer, getenv func(string) string, format, level string) *slog.Logger {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	journal := isJournalStream(w, getenv("JOURNAL_STREAM"))
	out := w
	var jw *journalWriter
	if journal {
		jw = &journalWriter{w: w}
		out = &jw.buf
	}
	var h slog.Handler
	switch {
	case format == "json":
		h = slog.NewJSONHandler(out, &slog.HandlerOptions{Level: lv})
	case format == "text":
		h = slog.NewTextHandler(out, &slog.HandlerOptions{Level: lv})
	case !journal && isTerminal(w):
		h = tint.NewTextHandler(out, &tint.Options{Level: lv, TimeFormat: time.TimeOnly, NoColor: getenv("NO_COLOR") != ""})
	default:
		h = slog.NewTextHandler(out, &slog.HandlerOptions{
			Level: lv,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		})
	}
	if journal {
		h = &journalHandler{h: h, w: jw}
	}
	return slog.New(h)
}

// syslogPriority maps a slog level to the syslog priority the journal
// records: err (3), warning (4), info (6) or debug (7).
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// journalWriter is where a journalHandler's inner handler formats a record
// before the handler writes it, prefixed, to w. mu guards buf and w for all
// the handlers derived from one logger.
type journalWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   io.Writer
}

// journalHandler prefixes every record h formats with its syslog priority.
type journalHandler struct {
	h slog.Handler
	w *journalWriter
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return j.h.Enabled(ctx, l)
}

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.w.mu.Lock()
	defer j.w.mu.Unlock()
	j.w.buf.Reset()
	j.w.buf.WriteByte('<')
	j.w.buf.WriteByte(byte('0' + syslogPriority(r.Level)))
	j.w.buf.WriteByte('>')
	if err := j.h.Handle(ctx, r); err != nil {
		return err
	}
	_, err := j.w.w.Write(j.w.buf.Bytes())
	return err
}

func (j *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{h: j.h.WithAttrs(attrs), w: j.w}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{h: j.h.WithGroup(name), w: j.w}
}
