package kafka

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A broker that is down makes the client log the same warning on every attempt: it is logged once,
// then again after the repeat interval with how many were dropped; info lines are dropped.
func TestClientLogRepeatsAMessageOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := newClientLog(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), time.Minute, func() time.Time { return now })
	log := slog.New(h).With("component", "kafka-client")
	other := slog.New(h.WithGroup("g")) // derived handlers share the counts
	for range 50 {
		log.Warn("unable to open connection to broker", "addr", "127.0.0.1:9092")
		other.Warn("unable to open connection to broker", "addr", "127.0.0.1:9192")
		log.Info("metadata refresh")
		now = now.Add(2 * time.Second)
	}
	log.Error("group session expired")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "unable to open connection") || strings.Contains(lines[0], "repeated") ||
		!strings.Contains(lines[1], "repeated=59") || !strings.Contains(lines[2], "group session expired") {
		t.Errorf("logged %d lines:\n%s\nwant the warning once, once more after a minute with repeated=59, and the other message", len(lines), buf.String())
	}
}
