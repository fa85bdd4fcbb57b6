// Package container runs ContainerSource: a user program, told where to send its events through
// K_SINK, run as a child process of the gateway.
//
// eventgate does not pull or run images. With serve --run-container-sources, the source's first
// container's command and args name a program on the host; it is started with the container's env plus
// K_SINK (the sink's URL) and K_CE_OVERRIDES (when the source has ceOverrides), restarted with
// exponential backoff whenever it exits, and stopped (SIGTERM, then SIGKILL after a grace period) when
// the source goes. Its stdout and stderr are logged line by line. Without the flag a ContainerSource is
// reported as not run (adapters.ErrNotRun). In Kubernetes the chart runs it as a Deployment instead.
package container

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/resources"
)

// Defaults, in one place.
const (
	defaultBackoffMin   = time.Second      // wait before the first restart, doubled for each quick exit after it
	defaultBackoffMax   = 30 * time.Second // cap on the wait between restarts
	defaultHealthyAfter = time.Minute      // a run this long starts the backoff again from its minimum
	defaultStopGrace    = 10 * time.Second // time a program has after SIGTERM before it is killed
)

// Environment variables eventgate sets for the program, as Knative does.
const (
	EnvSink        = "K_SINK"
	EnvCACerts     = "K_CA_CERTS" // the sink's CACerts (PEM), when it has them
	EnvCEOverrides = "K_CE_OVERRIDES"
)

// inheritedEnv are the gateway's own environment variables a program also gets; nothing else of the
// gateway's environment (its configuration, its credentials) is passed on.
var inheritedEnv = []string{"PATH", "HOME", "USER", "TMPDIR", "LANG", "LC_ALL", "TZ"}

// Runner runs one ContainerSource's program. New creates it; call Run once.
type Runner struct {
	src       *resources.Source
	log       *slog.Logger
	deps      adapters.Deps // reads the env's secrets
	path      string        // resolved program path
	args      []string      // arguments after the program
	sinkURL   string
	caCerts   string // K_CA_CERTS value, "" when none
	overrides string // K_CE_OVERRIDES value, "" when none
	set       settings
}

var _ adapters.Adapter = (*Runner)(nil)

func init() { adapters.Register("container", New) }

// settings are the Runner's tunables. New uses the defaults; this package's tests set what they need
// through newRunner. A zero field takes its default.
type settings struct {
	backoffMin   time.Duration // default defaultBackoffMin
	backoffMax   time.Duration // default defaultBackoffMax
	healthyAfter time.Duration // default defaultHealthyAfter
	stopGrace    time.Duration // default defaultStopGrace
}

func (s settings) withDefaults() settings {
	s.backoffMin = cmp.Or(s.backoffMin, defaultBackoffMin)
	s.backoffMax = cmp.Or(s.backoffMax, defaultBackoffMax)
	s.healthyAfter = cmp.Or(s.healthyAfter, defaultHealthyAfter)
	s.stopGrace = cmp.Or(s.stopGrace, defaultStopGrace)
	return s
}

// notRunError is a ContainerSource that will not run here; it wraps adapters.ErrNotRun and its
// message is the reason.
type notRunError struct{ reason string }

func (e *notRunError) Error() string { return e.reason }
func (e *notRunError) Unwrap() error { return adapters.ErrNotRun }

// New is the adapters.Factory for ContainerSource, registered as "container"; the Adapter it returns
// is a *Runner. It prepares the program of src. It fails with an error wrapping adapters.ErrNotRun
// when d.RunContainerSources is false, and with a plain error when the source names no program
// (eventgate cannot pull an image), the program is not found, a secret env value cannot be read, or
// the sink does not resolve. It starts nothing: Run does.
//
// The sink URL: a channel sink is d.IngressURL + "/NAMESPACE/NAME" (the in-cluster channel address
// when IngressURL is empty); a URI is itself; another reference resolves to its in-cluster address.
func New(src *resources.Source, d adapters.Deps) (adapters.Adapter, error) {
	return newRunner(src, d, settings{})
}

// newRunner is New with settings.
func newRunner(src *resources.Source, d adapters.Deps, set settings) (*Runner, error) {
	if src == nil || src.Container == nil {
		return nil, errors.New("container: not a ContainerSource")
	}
	name := src.NamespacedName()
	if !d.RunContainerSources {
		return nil, &notRunError{reason: "ContainerSource " + name +
			" not run: start serve with --run-container-sources to run its program as a child process"}
	}

	c := src.Container
	program, args := commandLine(c)
	if program == "" {
		return nil, fmt.Errorf("container: ContainerSource %s: no command: eventgate runs ContainerSource programs from the host, it cannot pull the image %s",
			name, c.Image)
	}
	path, err := exec.LookPath(program)
	if err != nil {
		return nil, fmt.Errorf("container: ContainerSource %s: program: %w", name, err)
	}
	sink, err := sinkTarget(src.Sink, d.IngressURL, d.AddressBook)
	if err != nil {
		return nil, fmt.Errorf("container: ContainerSource %s: sink: %w", name, err)
	}
	r := &Runner{src: src, log: d.Logger(src), deps: d, path: path, args: args, sinkURL: sink.URL,
		caCerts: sink.CACerts, set: set.withDefaults()}
	if len(src.CEOverrides) > 0 {
		b, err := json.Marshal(struct {
			Extensions map[string]string `json:"extensions"`
		}{src.CEOverrides})
		if err != nil {
			return nil, fmt.Errorf("container: ContainerSource %s: ceOverrides: %w", name, err)
		}
		r.overrides = string(b)
	}
	if _, err := r.environ(); err != nil {
		return nil, fmt.Errorf("container: ContainerSource %s: %w", name, err)
	}
	return r, nil
}

// commandLine returns the program and its arguments: command[0] with command[1:] and args, or, with
// no command, args[0] with args[1:]. The program is "" when both are empty.
func commandLine(c *resources.ContainerSpec) (string, []string) {
	line := append(append([]string(nil), c.Command...), c.Args...)
	if len(line) == 0 {
		return "", nil
	}
	return line[0], line[1:]
}

// sinkTarget resolves where the program posts to: a URL (a channel's is its ingress address) and
// the CA certificates to trust for it.
func sinkTarget(sink resources.Destination, ingressURL string, book map[string]string) (resources.Target, error) {
	r := &resources.Resolver{IngressURL: ingressURL, AddressBook: book}
	t, err := r.Resolve(sink)
	if err != nil {
		return resources.Target{}, err
	}
	if t.Channel != nil {
		return resources.Target{URL: r.ChannelAddress(&resources.Channel{Meta: resources.Meta{Namespace: t.Channel.Namespace, Name: t.Channel.Name}})}, nil
	}
	return t, nil
}

// environ returns the program's environment: the inherited variables, the container's env (secret
// values read now from the secrets directory, exactly as stored), then K_SINK, K_CA_CERTS and
// K_CE_OVERRIDES. Later entries win.
func (r *Runner) environ() ([]string, error) {
	var env []string
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, e := range r.src.Container.Env {
		v := e.Value
		if e.SecretKeyRef != nil {
			b, err := r.deps.ReadSecret(r.src, *e.SecretKeyRef)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			v = string(b)
		}
		env = append(env, e.Name+"="+v)
	}
	env = append(env, EnvSink+"="+r.sinkURL)
	if r.caCerts != "" {
		env = append(env, EnvCACerts+"="+r.caCerts)
	}
	if r.overrides != "" {
		env = append(env, EnvCEOverrides+"="+r.overrides)
	}
	return env, nil
}

// Run runs the program until ctx is done, restarting it with backoff whenever it exits (or fails to
// start); then it stops the program (SIGTERM, SIGKILL after the grace period), waits for it, and returns
// nil. It blocks; call it once.
func (r *Runner) Run(ctx context.Context) error {
	var delay time.Duration
	for {
		started := time.Now()
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		ran := time.Since(started)
		delay = restartDelay(delay, ran, r.set)
		r.log.Warn("container source program exited; restarting", "err", err, "ran", ran.Round(time.Millisecond),
			"restart_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// restartDelay returns the wait before the next start, given the previous wait (0 before the first
// restart) and how long the program just ran: the minimum for a first restart or after a healthy run
// (at least healthyAfter), else double the previous wait, capped at the maximum.
func restartDelay(prev, ran time.Duration, set settings) time.Duration {
	if prev <= 0 || ran >= set.healthyAfter {
		return set.backoffMin
	}
	return min(prev*2, set.backoffMax)
}

// runOnce starts the program and waits for it to exit, or, when ctx is done, stops it and waits. It
// returns the start or exit error (nil for exit status 0).
func (r *Runner) runOnce(ctx context.Context) error {
	env, err := r.environ()
	if err != nil {
		return err
	}
	stdout, stderr := newLineLogger(r.log, "stdout"), newLineLogger(r.log, "stderr")
	defer stdout.flush()
	defer stderr.flush()
	cmd := exec.Command(r.path, r.args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Once the program exited, give its output this long to drain, even if something it started
	// still holds the pipes.
	cmd.WaitDelay = time.Second
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.path, err)
	}
	r.log.Info("container source program started", "program", r.path, "pid", cmd.Process.Pid)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	select {
	case err = <-waited:
	case <-ctx.Done():
		r.log.Info("stopping container source program", "pid", cmd.Process.Pid)
		if termErr := terminate(cmd.Process); termErr != nil {
			r.log.Debug("SIGTERM failed", "err", termErr)
		}
		grace := time.NewTimer(r.set.stopGrace)
		select {
		case err = <-waited:
			grace.Stop()
		case <-grace.C:
			r.log.Warn("container source program ignored SIGTERM; killing it", "pid", cmd.Process.Pid,
				"grace", r.set.stopGrace)
			_ = kill(cmd.Process)
			err = <-waited
		}
	}
	// Whatever the program left running in its process group goes with it, as in a container.
	_ = kill(cmd.Process)
	return err
}
