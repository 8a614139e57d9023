package plugin

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

func TestPluginLogsAreBounded(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	sink := newLogSink(logger, "noisy", 2) // burst of 10 lines
	w := &lineWriter{sink: sink, stream: "stdout", level: slog.LevelInfo}

	// A 2500-byte line without a newline is cut into 1024-byte lines.
	w.Write([]byte(strings.Repeat("a", 2500)))
	w.Write([]byte("\n"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(l, "plugin=noisy") || strings.Count(l, "a") > maxLogLine+10 {
			t.Fatalf("line %.80q...", l)
		}
	}

	// Past the burst, lines are dropped and counted.
	buf.Reset()
	for range 100 {
		w.Write([]byte("spam\n"))
	}
	n := strings.Count(buf.String(), "msg=spam")
	if n < 6 || n > 8 {
		t.Fatalf("%d of 100 lines logged, want the rest of the burst (7)", n)
	}
	sink.tokens = 1 // as if time had passed
	w.Write([]byte("later\n"))
	if !strings.Contains(buf.String(), "msg=later") || !strings.Contains(buf.String(), "suppressed_lines="+strconv.Itoa(100-n)+"\n") {
		t.Fatalf("no suppressed count reported:\n%s", buf.String())
	}
}
