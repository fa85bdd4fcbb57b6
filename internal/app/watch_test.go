package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/config"
)

func TestReloadFilter(t *testing.T) {
	f := reloadFilter{
		files:     map[string]bool{"/etc/eg/gateway.conf": true},
		dirs:      map[string]bool{"/m": true, "/m/conf.d": true},
		secretDir: "/s/tok",
	}
	for _, tc := range []struct {
		name        string
		isDir, gone bool
		want        bool
	}{
		{"/m/app.yaml", false, false, true},
		{"/m/app.yml", false, false, true},
		{"/m/app.json", false, false, true},
		{"/m/APP.YAML", false, false, true},
		{"/m/app.yaml", false, true, true}, // a manifest removed or renamed away
		{"/m/serve.log", false, false, false},
		{"/m/serve.log", false, true, false},
		{"/m/notes.txt", false, false, false},
		{"/m/app.yaml~", false, false, false}, // an editor's backup: Load does not read it
		{"/m/Makefile", false, false, false},  // an existing file: not a directory
		{"/m/old", false, true, true},         // removed: may have been a directory
		{"/m/sub", true, false, true},         // a new subdirectory may hold manifests
		{"/m/team.v2", true, false, true},     // whatever its name
		{"/m/conf.d", false, true, true},      // a watched directory removed
		{"/m", false, true, true},             // the resource directory itself removed
		{"/m/..data", false, false, true},     // a ConfigMap mount's update
		{"/m/..data_tmp", false, true, true},  // renamed to ..data
		{"/m/..2026_01_02_03_04_05.1", true, false, true},
		{"/m/..2026_01_02_03_04_05.1", false, true, true},
		{"/m/.app.yaml.swp", false, false, true},
		{"/s/tok", false, true, true},
		{"/s/tok/default.orders", false, false, true}, // token files are NAMESPACE.CHANNEL
		{"/s/tok/token", false, false, true},
		{"/s/tok/..data", false, false, true},
		{"/s/tok/..2026_01_02/default.orders", false, false, true},
		{"/s/tokens/x.log", false, false, false}, // not under the secret, only named alike
		{"/etc/eg/gateway.conf", false, false, true},
		{"/etc/eg/gateway.conf", false, true, true},
		{"/etc/eg/other.conf", false, false, false},
	} {
		if got := f.reloads(tc.name, tc.isDir, tc.gone); got != tc.want {
			t.Errorf("reloads(%q, isDir=%v, gone=%v) = %v, want %v", tc.name, tc.isDir, tc.gone, got, tc.want)
		}
	}

	// Without a token secret nothing is kept for being under one.
	f.secretDir = ""
	if f.reloads("/tok.log", false, false) {
		t.Error(`reloads("/tok.log") with no secret = true, want false`)
	}
}

// TestWatchIgnoresLogInManifestDir runs a gateway on a directory that also holds its log, as
// `eventgate serve -f . 2> serve.log` does, and writes to that log every few milliseconds while a
// new manifest is added. Each scheduled reload waits for 200 ms of quiet, so if the log's writes
// counted, they would push the new manifest's reload back for as long as the log is written to;
// the reload must come, and be the only one.
func TestWatchIgnoresLogInManifestDir(t *testing.T) {
	dir := t.TempDir()
	const channel = `apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: %s, namespace: default}
`
	if err := os.WriteFile(filepath.Join(dir, "one.yaml"), []byte(fmt.Sprintf(channel, "one")), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	cfg := config.Default()
	cfg.Ingress.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	logs := &lockedBuffer{}
	ready := make(chan struct{})
	a, err := New(Options{
		Config: cfg,
		Paths:  []string{dir},
		// The gateway's own log goes to the watched directory too: each reload writes a line there.
		Log:   slog.New(slog.NewJSONHandler(io.MultiWriter(logs, logFile), nil)),
		Ready: func(string, string) { close(ready) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()
	select {
	case <-ready:
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not start")
	}

	// The test's own lines, from a second writer, as a shell's redirection or a log shipper would.
	other, err := os.OpenFile(logFile.Name(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	writeLog := func(i int) {
		if _, err := fmt.Fprintf(other, "log line %d\n", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		writeLog(i)
	}
	if err := os.WriteFile(filepath.Join(dir, "two.yaml"), []byte(fmt.Sprintf(channel, "two")), 0o600); err != nil {
		t.Fatal(err)
	}
	// The log keeps being written, far more often than the debounce, until the reload is seen.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for i := 100; logs.count("resources reloaded") == 0; i++ {
		select {
		case <-tick.C:
			writeLog(i)
		case <-deadline:
			t.Fatalf("no reload after adding two.yaml while serve.log was written to; logs:\n%s", logs.String())
		}
	}
	if n := logs.count("resources reloaded"); n != 1 {
		t.Errorf("%d reloads, want 1 (for two.yaml); logs:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"resources reloaded","channels":2`) {
		t.Errorf("the reload did not apply two.yaml; logs:\n%s", logs.String())
	}
	if n := logs.count("resources rejected; keeping the last good set"); n != 0 {
		t.Errorf("%d rejected reloads; logs:\n%s", n, logs.String())
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
