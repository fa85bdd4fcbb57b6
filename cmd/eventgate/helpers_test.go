package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the eventgate binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "eventgate")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building eventgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateway is one eventgate process started by a test.
type gateway struct {
	t       *testing.T
	cmd     *exec.Cmd
	ingress string // http://127.0.0.1:PORT
	admin   string
	stderr  *syncBuffer
	exited  chan error
}

var readyLine = regexp.MustCompile(`ingress on (\S+) .*admin on (\S+) `)

// testRun tells this test process's shared read groups from those of earlier runs.
var testRun = strconv.FormatInt(time.Now().UnixNano()%1_000_000_000, 36)

// testInvocations numbers the runs of each test in this process (-count): each has its own shared
// read group, so a gateway one run killed on purpose does not hold up the next run's first
// rebalance. Keyed by the run's *testing.T; guarded by testInvocationsMu.
var (
	testInvocationsMu sync.Mutex
	testInvocations   = map[*testing.T]int{}
	testInvocationSeq = map[string]int{}
)

// testInvocation returns t's run number among the runs of its test in this process (0 for the first).
func testInvocation(t *testing.T) int {
	testInvocationsMu.Lock()
	defer testInvocationsMu.Unlock()
	n, ok := testInvocations[t]
	if !ok {
		n = testInvocationSeq[t.Name()]
		testInvocationSeq[t.Name()] = n + 1
		testInvocations[t] = n
		t.Cleanup(func() {
			testInvocationsMu.Lock()
			delete(testInvocations, t)
			testInvocationsMu.Unlock()
		})
	}
	return n
}

// testSharedReadGroup is the kafka.sharedReadGroup of the gateways a test starts: the same for all
// of one test (its gateways are replicas of each other), another for every test and run. With one
// group for all, a gateway a test kills held up the next tests' new channels for a session timeout.
func testSharedReadGroup(t *testing.T) string {
	name := []byte(t.Name())
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			name[i] = '-'
		}
	}
	return fmt.Sprintf("e2e._%s.%s-%d", name[:min(len(name), 180)], testRun, testInvocation(t))
}

// startGateway runs `eventgate serve` with args (plus loopback ports chosen by the kernel) and waits
// until it prints where it listens. The process is killed at cleanup if the test has not stopped it.
func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	return startGatewayEnv(t, nil, args...)
}

// startGatewayEnv is startGateway with extra environment variables (KEY=VALUE).
func startGatewayEnv(t *testing.T, env []string, args ...string) *gateway {
	t.Helper()
	g := launch(t, env, false, args...)
	return g
}

// startGatewayMayFail is startGateway for a gateway that may refuse to start: it returns nil when
// the process exits before serving.
func startGatewayMayFail(t *testing.T, args ...string) *gateway {
	t.Helper()
	return launch(t, nil, true, args...)
}

func launch(t *testing.T, env []string, mayFail bool, args ...string) *gateway {
	t.Helper()
	full := append([]string{"serve", "--set", "ingress.address=127.0.0.1:0", "--set", "admin.address=127.0.0.1:0",
		"--set", "log.format=json", "--set", "log.level=debug", "--set", "kafka.sharedReadGroup=" + testSharedReadGroup(t)}, args...)
	cmd := exec.Command(binPath, full...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = g.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			g.stopAtCleanup()
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", tail(g.stderr.String(), 60))
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if readyLine.MatchString(sc.Text()) {
				lines <- sc.Text()
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		m := readyLine.FindStringSubmatch(line)
		g.ingress, g.admin = "http://"+m[1], "http://"+m[2]
	case err := <-g.exited:
		g.exited <- err
		if mayFail {
			t.Logf("the gateway refused to start (%v): %s", err, tail(g.stderr.String(), 3))
			return nil
		}
		t.Fatalf("eventgate exited before serving: %v\n%s", err, g.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("eventgate did not start within 60s\n%s", g.stderr.String())
	}
	return g
}

// stop sends SIGTERM and returns the exit error (nil for exit 0), failing if it takes over limit.
func (g *gateway) stop(limit time.Duration) error {
	g.t.Helper()
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.exited:
		return err
	case <-time.After(limit):
		g.t.Fatalf("eventgate did not exit within %v of SIGTERM", limit)
		return nil
	}
}

// cleanupStopLimit bounds how long a gateway still running at its test's cleanup has to exit on
// SIGTERM before it is killed.
const cleanupStopLimit = 30 * time.Second

// stopAtCleanup stops a gateway its test left running as an operator would, with SIGTERM, and kills
// it only when it does not exit within cleanupStopLimit. Killed, it stayed a member of its consumer
// groups until its session timed out (15 s), and a later gateway on the same groups (the next run
// of the test under -count, or a later test with a subscription of the same name) waited for that
// in its first rebalance: up to 30 s before it delivered, when the dead member had been the group's
// leader and the coordinator waited for its SyncGroup too.
func (g *gateway) stopAtCleanup() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(cleanupStopLimit):
		g.t.Logf("eventgate did not exit within %v of SIGTERM at cleanup; killed", cleanupStopLimit)
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// waitLog polls the gateway's log until it contains s.
func (g *gateway) waitLog(s string, within time.Duration) {
	g.t.Helper()
	eventually(g.t, within, func() bool { return strings.Contains(g.stderr.String(), s) }, "log line %q", s)
}

// eventually polls cond every 20ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for "+what, append([]any{within}, args...)...)
		}
		<-tick.C
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// post sends a request to the gateway's ingress.
func post(t *testing.T, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func binaryEvent(id string) map[string]string {
	return map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/e2e", "Ce-Type": "dev.eventgate.test",
		"Content-Type": "text/plain"}
}

// writeFile writes body to dir/name.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// delivery is one request a recording subscriber received.
type delivery struct {
	path   string
	header http.Header
	body   string
}

// subscriber is a recording HTTP subscriber whose answer per path is programmable.
type subscriber struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	got     []delivery
	tries   map[string]int                                // path and Ce-Id → requests so far: serve stays O(1) however many arrived
	answer  map[string]func(w http.ResponseWriter, n int) // path → answer, given the attempt number of the event
	release chan struct{}                                 // closed at cleanup: frees handlers that hang
}

func newSubscriber(t *testing.T) *subscriber {
	t.Helper()
	s := &subscriber{answer: map[string]func(http.ResponseWriter, int){}, tries: map[string]int{}, release: make(chan struct{})}
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	t.Cleanup(func() {
		close(s.release)
		s.srv.Close()
	})
	return s
}

func (s *subscriber) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, delivery{path: r.URL.Path, header: r.Header.Clone(), body: string(body)})
	// Attempts of this event at this path, this one included. (Counting them by scanning every
	// delivery made the subscriber quadratic: with tens of thousands of events under -race it
	// answered too slowly for a rolling-restart test to deliver its load in time.)
	key := r.URL.Path + "\x00" + r.Header.Get("Ce-Id")
	s.tries[key]++
	n := s.tries[key]
	answer := s.answer[r.URL.Path]
	s.mu.Unlock()
	if answer == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	answer(w, n)
}

func (s *subscriber) on(path string, f func(w http.ResponseWriter, n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer[path] = f
}

// at returns what path received so far.
func (s *subscriber) at(path string) []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []delivery
	for _, d := range s.got {
		if d.path == path {
			out = append(out, d)
		}
	}
	return out
}

// waitFor polls until path received at least n requests and returns them.
func (s *subscriber) waitFor(t *testing.T, path string, n int) []delivery {
	t.Helper()
	eventually(t, 20*time.Second, func() bool { return len(s.at(path)) >= n }, "%d deliveries at %s", n, path)
	return s.at(path)
}
