package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	readyGateway = regexp.MustCompile(`ingress on (\S+) .*admin on (\S+) `)
	readyListen  = regexp.MustCompile(`listening on (\S+)`)
)

type gatewayProc struct {
	*proc
	ingress string // http://HOST:PORT
	admin   string // http://HOST:PORT
	dir     string // the manifest directory it watches: a file written there is applied (a reload)
}

// gatewayReady is how long gateway waits for a gateway's /readyz.
const gatewayReady = 60 * time.Second

// gateway starts `eventgate serve` with the given manifests on loopback ports and waits until /readyz.
func (r *runner) gateway(ctx context.Context, manifests string, extra ...string) (*gatewayProc, error) {
	return r.gatewayWithin(ctx, gatewayReady, nil, manifests, extra...)
}

// gatewayWithin is gateway waiting up to limit for /readyz, with env ("KEY=value" each) added to its
// environment.
func (r *runner) gatewayWithin(ctx context.Context, limit time.Duration, env []string, manifests string, extra ...string) (*gatewayProc, error) {
	dir, err := os.MkdirTemp(r.tmp, "gateway-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(manifests), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"serve", "-f", dir, "--set", "ingress.address=127.0.0.1:0", "--set", "admin.address=127.0.0.1:0",
		"--set", "log.level=warn", "--set", "log.format=json"}, extra...)
	if r.prof != nil {
		args = append(args, "--set", "admin.pprof=true")
	}
	env = slices.Clone(env)
	if r.kafka {
		env = append(env, "EVENTGATE_KAFKA__BROKERS="+r.s.brokers)
	}
	if r.nats {
		env = append(env, "EVENTGATE_NATS__SERVERS="+r.s.nats)
	}
	p, m, err := startWithin(ctx, limit, "eventgate", readyGateway, env, r.bin("eventgate"), args...)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+m[2]+"/readyz", limit); err != nil {
		p.stop()
		return nil, fmt.Errorf("eventgate: %w\n%s", err, tail(p.stderr.String(), 20))
	}
	g := &gatewayProc{proc: p, ingress: "http://" + m[1], admin: "http://" + m[2], dir: dir}
	if r.prof != nil {
		p.beforeStop = r.prof.start(ctx, g.admin) // the heap profile, and the CPU one finished
	}
	return g, nil
}

// server starts a baseline or sink that prints "listening on HOST:PORT" and returns its base URL.
func (r *runner) server(ctx context.Context, name string, env []string, args ...string) (*proc, string, error) {
	p, m, err := start(ctx, name, readyListen, env, r.bin(name), args...)
	if err != nil {
		return nil, "", err
	}
	return p, "http://" + m[1], nil
}

// benchResult is the part of `eventgate bench --json` the runner reads.
type benchResult struct {
	Events   int64            `json:"events"`
	EventsPS float64          `json:"events_per_s"`
	Codes    map[string]int64 `json:"codes"`
	Latency  struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
	FirstErrors []string `json:"first_errors"`
}

// load runs `eventgate bench URL args... --json` to completion.
func (r *runner) load(ctx context.Context, url string, args ...string) (benchResult, error) {
	var res benchResult
	p, _, err := start(ctx, "bench", nil, nil, r.bin("eventgate"), append([]string{"bench", url, "--json"}, args...)...)
	if err != nil {
		return res, err
	}
	if err := p.wait(ctx, 30*time.Minute); err != nil {
		return res, err
	}
	if err := json.Unmarshal([]byte(p.stdout.String()), &res); err != nil {
		return res, fmt.Errorf("bench output: %w", err)
	}
	for code, n := range res.Codes {
		if !strings.HasPrefix(code, "2") {
			return res, fmt.Errorf("bench against %s: %d answers %s (%v)", url, n, code, res.FirstErrors)
		}
	}
	return res, nil
}

// sinkResult is the part of `eventgate bench sink --json` the runner reads.
type sinkResult struct {
	Events   int64   `json:"events"`
	EventsPS float64 `json:"events_per_s"`
	Elapsed  float64 `json:"elapsed_s"`
	// AnsweredPS is events/s from the first arrival to the last answer.
	AnsweredPS float64 `json:"answered_per_s"`
	Latency    struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
	// Response is each request's time from arrival to answer at the sink (queue and service time).
	Response struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"response"`
}

// sink starts `eventgate bench sink --port 0 --json` with args and returns it and its base URL
// (http://HOST:PORT).
func (r *runner) sink(ctx context.Context, args ...string) (*proc, string, error) {
	return r.sinkOver(ctx, nil, args...)
}

// sinkOver is sink serving HTTPS (HTTP/1.1 only) with tls, its URL then https://HOST:PORT; a nil tls
// is plain HTTP, as sink.
func (r *runner) sinkOver(ctx context.Context, tls *sinkTLS, args ...string) (*proc, string, error) {
	args = append(append([]string{"bench", "sink", "--port", "0", "--json"}, tls.sinkArgs()...), args...)
	p, m, err := start(ctx, "sink", readyListen, nil, r.bin("eventgate"), args...)
	if err != nil {
		return nil, "", err
	}
	return p, tls.scheme() + m[1], nil
}

func sinkOutput(p *proc) (sinkResult, error) {
	var res sinkResult
	if err := json.Unmarshal([]byte(p.stdout.String()), &res); err != nil {
		return res, fmt.Errorf("sink output: %w (%q)", err, tail(p.stdout.String(), 5))
	}
	return res, nil
}
