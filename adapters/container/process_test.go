//go:build unix

package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
)

// sinkpost is the path of the test program built from testdata/sinkpost by TestMain.
var sinkpost string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "eventgate-container-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sinkpost = filepath.Join(dir, "sinkpost")
	build := exec.Command("go", "build", "-o", sinkpost, "./testdata/sinkpost")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building testdata/sinkpost: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// posted is one event the test sink received.
type posted struct {
	event *event.Event
	data  struct {
		PID  int               `json:"pid"`
		Args []string          `json:"args"`
		Env  map[string]string `json:"env"`
	}
}

// testSink starts a CloudEvents receiver on 127.0.0.1 and returns its URL and the events it gets.
func testSink(t *testing.T) (string, <-chan posted) {
	t.Helper()
	got := make(chan posted, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		es, err := event.ParseHTTP(r.Header, body)
		if err != nil || len(es) != 1 {
			t.Errorf("sink got a request that is not one CloudEvent: %v", err)
			http.Error(w, "not a CloudEvent", http.StatusBadRequest)
			return
		}
		p := posted{event: es[0]}
		if err := json.Unmarshal(es[0].Data, &p.data); err != nil {
			t.Errorf("event data: %v", err)
		}
		got <- p
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// receive waits for the next event, failing the test after 10 seconds.
func receive(t *testing.T, got <-chan posted) posted {
	t.Helper()
	select {
	case p := <-got:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no event reached the sink within 10s")
		return posted{}
	}
}

// start runs r in a goroutine and returns a function that stops it and waits for Run to return.
func start(t *testing.T, r *Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	return stop
}

// reaped reports whether no process, not even a zombie, has id pid: a child Run started must have
// been waited for.
func reaped(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// gone reports whether no process has id pid any more, or only its zombie does (an orphan waits to
// be reaped by whatever reaps orphans here, which may be slow or nothing).
func gone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	// The state follows the parenthesised command name: "PID (comm) S ...".
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func TestProgramPostsToItsSinkAndIsRestarted(t *testing.T) {
	url, got := testSink(t)
	secrets := t.TempDir()
	if err := os.MkdirAll(filepath.Join(secrets, "heartbeat"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "heartbeat", "token"), []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVENTGATE_SECRET", "must not reach the program")

	src := testSource(sinkpost, "exit")
	src.Sink = resources.Destination{URI: url}
	src.CEOverrides = map[string]string{"origin": "heartbeat"}
	src.Container.Env = []resources.EnvVar{
		{Name: "GREETING", Value: "hello"},
		{Name: "TOKEN", SecretKeyRef: &resources.SecretKeyRef{Name: "heartbeat", Key: "token"}},
	}
	var logs syncBuffer
	r, err := newRunner(src, adapters.Deps{RunContainerSources: true, SecretsDir: secrets,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}, settings{backoffMin: 10 * time.Millisecond, backoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)

	first, second := receive(t, got), receive(t, got)
	stop()
	if first.data.PID == second.data.PID {
		t.Fatalf("both events came from pid %d: the program was not restarted", first.data.PID)
	}
	for _, p := range []posted{first, second} {
		e := p.event
		if e.Extension("origin") != "heartbeat" {
			t.Errorf("event %s: origin extension %q, want heartbeat (from K_CE_OVERRIDES)", e.ID, e.Extension("origin"))
		}
		env := p.data.Env
		if env["GREETING"] != "hello" || env["TOKEN"] != "s3cr3t" || env["EVENTGATE_SECRET"] != "" {
			t.Errorf("program environment %v: want GREETING=hello, TOKEN=s3cr3t, no EVENTGATE_SECRET", env)
		}
		if len(p.data.Args) != 1 || p.data.Args[0] != "exit" {
			t.Errorf("program args %q, want [exit]", p.data.Args)
		}
	}
	out := logs.String()
	for _, want := range []string{
		"source=shop/heartbeat",
		fmt.Sprintf("line=\"posted event sinkpost-%d\"", first.data.PID),
		"stream=stderr line=\"a line on stderr\"",
		"container source program exited; restarting",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

func TestStopSendsSIGTERMAndWaits(t *testing.T) {
	url, got := testSink(t)
	src := testSource(sinkpost, "stay")
	src.Sink = resources.Destination{URI: url}
	var logs syncBuffer
	r, err := newRunner(src, adapters.Deps{RunContainerSources: true, Log: slog.New(slog.NewTextHandler(&logs, nil))}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	pid := receive(t, got).data.PID
	if gone(pid) {
		t.Fatalf("program %d is not running after posting", pid)
	}
	stop()
	if !reaped(pid) {
		t.Fatalf("program %d still exists after Run returned", pid)
	}
	if !strings.Contains(logs.String(), `line="got SIGTERM"`) {
		t.Errorf("the program did not see SIGTERM:\n%s", logs.String())
	}
}

func TestStopKillsAProgramThatIgnoresSIGTERM(t *testing.T) {
	url, got := testSink(t)
	src := testSource(sinkpost, "ignore-term")
	src.Sink = resources.Destination{URI: url}
	var logs syncBuffer
	r, err := newRunner(src, adapters.Deps{RunContainerSources: true, Log: slog.New(slog.NewTextHandler(&logs, nil))},
		settings{stopGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	pid := receive(t, got).data.PID
	stop()
	if !reaped(pid) {
		t.Fatalf("program %d still exists after Run returned", pid)
	}
	if !strings.Contains(logs.String(), "ignored SIGTERM; killing it") {
		t.Errorf("logs do not say the program was killed:\n%s", logs.String())
	}
}

func TestStopKillsWhatTheProgramStarted(t *testing.T) {
	url, got := testSink(t)
	// A shell that runs sinkpost in the background and waits: stopping the shell must stop its child.
	src := testSource("/bin/sh", "-c", `"$0" stay & wait`, sinkpost)
	src.Sink = resources.Destination{URI: url}
	r, err := newRunner(src, adapters.Deps{RunContainerSources: true}, settings{stopGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, r)
	pid := receive(t, got).data.PID
	stop()
	// The child is reaped by its parent shell or by init; poll until it is gone.
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !gone(pid) {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("the program's child %d outlived the source", pid)
		}
	}
}
