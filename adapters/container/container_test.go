package container

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/resources"
)

// testSource returns ContainerSource shop/heartbeat running program with args, sinking into the
// channel shop/orders.
func testSource(program string, args ...string) *resources.Source {
	return &resources.Source{
		Meta: resources.Meta{APIVersion: "sources.knative.dev/v1", Kind: "ContainerSource", Name: "heartbeat", Namespace: "shop"},
		Sink: resources.Destination{Ref: &resources.Reference{APIVersion: "messaging.knative.dev/v1", Kind: "InMemoryChannel",
			Name: "orders", Namespace: "shop"}},
		Container: &resources.ContainerSpec{Name: "heartbeat", Image: "example.com/heartbeat:1.0",
			Command: []string{program}, Args: args},
	}
}

func TestWithoutTheFlagTheSourceIsNotRun(t *testing.T) {
	src := testSource("/bin/true")
	src.Namespace, src.Name = "default", "x"
	_, err := New(src, adapters.Deps{})
	if !errors.Is(err, adapters.ErrNotRun) {
		t.Fatalf("err %v, want adapters.ErrNotRun", err)
	}
	const want = "ContainerSource default/x not run: start serve with --run-container-sources to run its program as a child process"
	if err.Error() != want {
		t.Fatalf("reason %q, want %q", err.Error(), want)
	}
}

func TestNoCommandNamesTheImage(t *testing.T) {
	src := testSource("")
	src.Container.Command = nil
	_, err := New(src, adapters.Deps{RunContainerSources: true})
	if err == nil || errors.Is(err, adapters.ErrNotRun) ||
		!strings.Contains(err.Error(), "no command: eventgate runs ContainerSource programs from the host, it cannot pull the image example.com/heartbeat:1.0") {
		t.Fatalf("err %v, want the no-command error naming the image", err)
	}
}

func TestProgramNotFound(t *testing.T) {
	_, err := New(testSource(filepath.Join(t.TempDir(), "nope")), adapters.Deps{RunContainerSources: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err %v, want fs.ErrNotExist", err)
	}
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		command, args []string
		program       string
		rest          []string
	}{
		{[]string{"/heartbeat"}, []string{"--period=10s"}, "/heartbeat", []string{"--period=10s"}},
		{[]string{"/bin/sh", "-c"}, []string{"echo hi"}, "/bin/sh", []string{"-c", "echo hi"}},
		{nil, []string{"/heartbeat", "--once"}, "/heartbeat", []string{"--once"}},
		{nil, nil, "", nil},
	}
	for _, tc := range cases {
		program, rest := commandLine(&resources.ContainerSpec{Command: tc.command, Args: tc.args})
		if program != tc.program || !slices.Equal(rest, tc.rest) {
			t.Errorf("commandLine(%q, %q) = %q %q, want %q %q", tc.command, tc.args, program, rest, tc.program, tc.rest)
		}
	}
}

func TestSinkURL(t *testing.T) {
	channel := resources.Destination{Ref: &resources.Reference{Kind: "KafkaChannel", Name: "orders", Namespace: "shop"}}
	cases := []struct {
		sink    resources.Destination
		ingress string
		want    string
	}{
		{channel, "http://127.0.0.1:8080", "http://127.0.0.1:8080/shop/orders"},
		{channel, "http://127.0.0.1:8080/", "http://127.0.0.1:8080/shop/orders"},
		{channel, "", "http://orders-kn-channel.shop.svc.cluster.local"},
		{resources.Destination{URI: "https://hooks.example.com/in"}, "http://127.0.0.1:8080", "https://hooks.example.com/in"},
		{resources.Destination{Ref: &resources.Reference{Kind: "Service", Name: "fulfilment", Namespace: "shop"}}, "http://127.0.0.1:8080",
			"http://fulfilment.shop.svc.cluster.local"},
	}
	for _, tc := range cases {
		got, err := sinkTarget(tc.sink, tc.ingress, nil)
		if err != nil || got.URL != tc.want {
			t.Errorf("sinkTarget(%+v, %q) = %q, %v; want %q", tc.sink, tc.ingress, got.URL, err, tc.want)
		}
	}
	if _, err := sinkTarget(resources.Destination{}, "http://127.0.0.1:8080", nil); !errors.Is(err, resources.ErrUnresolvable) {
		t.Errorf("empty sink: err %v, want ErrUnresolvable", err)
	}
}

func TestRestartDelay(t *testing.T) {
	o := settings{}.withDefaults() // 1s doubling to 30s, healthy after a minute
	cases := []struct {
		prev, ran, want time.Duration
	}{
		{0, 0, time.Second}, // first restart
		{time.Second, 10 * time.Millisecond, 2 * time.Second},
		{2 * time.Second, 5 * time.Second, 4 * time.Second},
		{16 * time.Second, time.Second, 30 * time.Second}, // capped
		{30 * time.Second, time.Second, 30 * time.Second},
		{30 * time.Second, 59 * time.Second, 30 * time.Second},
		{30 * time.Second, time.Minute, time.Second}, // healthy for a minute: start over
		{8 * time.Second, time.Hour, time.Second},
	}
	for _, tc := range cases {
		if got := restartDelay(tc.prev, tc.ran, o); got != tc.want {
			t.Errorf("restartDelay(%v, ran %v) = %v, want %v", tc.prev, tc.ran, got, tc.want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	secrets := t.TempDir()
	if err := os.MkdirAll(filepath.Join(secrets, "heartbeat"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "heartbeat", "token"), []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVENTGATE_KAFKA__SASL__PASSWORD", "gateway-only")
	src := testSource("/bin/true")
	src.Container.Env = []resources.EnvVar{
		{Name: "POD_NAME", Value: "heartbeat"},
		{Name: "EMPTY", Value: ""},
		{Name: "TOKEN", SecretKeyRef: &resources.SecretKeyRef{Name: "heartbeat", Key: "token"}},
	}
	src.CEOverrides = map[string]string{"origin": "heartbeat"}
	r, err := newRunner(src, adapters.Deps{RunContainerSources: true, SecretsDir: secrets, IngressURL: "http://127.0.0.1:8080"}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := r.environ()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POD_NAME=heartbeat", "EMPTY=", "TOKEN=s3cr3t", "K_SINK=http://127.0.0.1:8080/shop/orders",
		`K_CE_OVERRIDES={"extensions":{"origin":"heartbeat"}}`} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %q: %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "EVENTGATE_") {
			t.Errorf("the gateway's own environment leaked: %q", kv)
		}
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "K_CA_CERTS=") }) {
		t.Errorf("K_CA_CERTS set for a sink without CACerts: %q", env)
	}
	// A sink's CACerts reach the program as K_CA_CERTS, as Knative's SinkBinding passes them.
	withCA := testSource("/bin/true")
	withCA.Sink = resources.Destination{URI: "https://sink.example/in", CACerts: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
	r, err = newRunner(withCA, adapters.Deps{RunContainerSources: true}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	if env, _ = r.environ(); !slices.Contains(env, "K_CA_CERTS="+withCA.Sink.CACerts) || !slices.Contains(env, "K_SINK=https://sink.example/in") {
		t.Errorf("env %q lacks the sink's K_SINK and K_CA_CERTS", env)
	}

	src.Container.Env[2].SecretKeyRef.Key = "missing"
	if _, err := newRunner(src, adapters.Deps{RunContainerSources: true, SecretsDir: secrets}, settings{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing secret: err %v, want fs.ErrNotExist", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for capturing logs.
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

func TestLineLogger(t *testing.T) {
	var out syncBuffer
	l := newLineLogger(slog.New(slog.NewJSONHandler(&out, nil)), "stdout")
	for _, chunk := range []string{"hel", "lo\nwor", "ld\r\n\n", strings.Repeat("x", maxLine+5), "\ntail"} {
		if n, err := l.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	l.flush()
	var lines []string
	for _, rec := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		i := strings.Index(rec, `"line":"`)
		if i < 0 || !strings.Contains(rec, `"stream":"stdout"`) {
			t.Fatalf("log record %s", rec)
		}
		lines = append(lines, strings.TrimSuffix(rec[i+len(`"line":"`):], `"}`))
	}
	want := []string{"hello", "world", "", strings.Repeat("x", maxLine), "xxxxx", "tail"}
	if !slices.Equal(lines, want) {
		t.Fatalf("lines %q, want %q", shorten(lines), shorten(want))
	}
}

func shorten(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if len(s) > 20 {
			s = fmt.Sprintf("%s…(%d bytes)", s[:20], len(s))
		}
		out[i] = s
	}
	return out
}
