package plugin

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

const maxLogLine = 1024

// logSink writes one plugin's log lines to the relay's logger, tagged with
// the plugin's name, at most rate lines per second (burst of 5 seconds'
// worth). Lines over the budget are counted and reported with the next
// line that gets through.
type logSink struct {
	logger *slog.Logger
	name   string
	rate   float64

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
}

func newLogSink(logger *slog.Logger, name string, perSecond int) *logSink {
	r := float64(perSecond)
	return &logSink{logger: logger, name: name, rate: r, tokens: 5 * r, last: time.Now()}
}

func (s *logSink) emit(level slog.Level, msg string, attrs ...slog.Attr) {
	if !s.logger.Enabled(context.Background(), level) {
		return
	}
	s.mu.Lock()
	now := time.Now()
	s.tokens += now.Sub(s.last).Seconds() * s.rate
	if burst := 5 * s.rate; s.tokens > burst {
		s.tokens = burst
	}
	s.last = now
	if s.tokens < 1 {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.tokens--
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()

	if len(msg) > maxLogLine {
		msg = msg[:maxLogLine] + "…"
	}
	attrs = append(attrs, slog.String("plugin", s.name))
	if dropped > 0 {
		attrs = append(attrs, slog.Int("suppressed_lines", dropped))
	}
	s.logger.LogAttrs(context.Background(), level, msg, attrs...)
}

// lineWriter turns a guest's stdout or stderr into log lines.
type lineWriter struct {
	sink   *logSink
	stream string
	level  slog.Level
	mu     sync.Mutex
	buf    []byte
}

// Write implements io.Writer for wazero's ModuleConfig.WithStdout/WithStderr.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(w.buf)
			if room <= 0 {
				w.flushLocked()
				continue
			}
			if len(p) > room {
				w.buf = append(w.buf, p[:room]...)
				p = p[room:]
				w.flushLocked()
				continue
			}
			w.buf = append(w.buf, p...)
			break
		}
		if len(w.buf)+i > maxLogLine {
			w.buf = append(w.buf, p[:maxLogLine-len(w.buf)]...)
		} else {
			w.buf = append(w.buf, p[:i]...)
		}
		p = p[i+1:]
		w.flushLocked()
	}
	return n, nil
}

// flushLocked emits the buffered line. Lock must be held.
func (w *lineWriter) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	w.sink.emit(w.level, string(w.buf), slog.String("stream", w.stream))
	w.buf = w.buf[:0]
}
