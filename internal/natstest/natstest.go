// Package natstest runs a real NATS server with JetStream inside a test process, so that the NATS
// tests need nothing external. It is imported only by tests.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options are a server's settings; the zero value is a fresh store on a free port.
type Options struct {
	// Dir is the JetStream store; empty: a fresh temp dir of the test's.
	Dir string
	// Port is the client port on 127.0.0.1; 0: a free one.
	Port int
	// MaxPayload bounds a message's size; 0: the server's default (1 MiB).
	MaxPayload int32
}

// Server starts the server, waits until it takes connections (failing the test after 20s), and
// shuts it down at the test's cleanup (a test may shut it down before, to stop the server).
func Server(t testing.TB, o Options) *server.Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Port == 0 {
		o.Port = -1 // the server's word for a free port
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: o.Port, JetStream: true, StoreDir: o.Dir,
		MaxPayload: o.MaxPayload, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready within 20s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}
