package main

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// freePort returns a loopback port nobody listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsGateway starts a gateway whose channels default to NATS on url.
func natsGateway(t *testing.T, url string, args ...string) *gateway {
	t.Helper()
	return startGateway(t, append([]string{"--set", "nats.servers=" + url, "--set", "channels.defaultProvisioner=nats"}, args...)...)
}

// streamMessages reads every message stored on stream with an independent client, by sequence.
func streamMessages(t *testing.T, url, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	st := s.CachedInfo().State
	var out []*jetstream.RawStreamMsg
	for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stream %s message %s: %v", stream, strconv.FormatUint(seq, 10), err)
		}
		out = append(out, m)
	}
	return out
}

// idsOnStream counts, by ce-id header, the events stored on stream.
func idsOnStream(t *testing.T, url, stream string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, m := range streamMessages(t, url, stream) {
		seen[m.Header.Get("ce-id")]++
	}
	return seen
}
