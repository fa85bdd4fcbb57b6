package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// subsShape is one way of putting N subscriptions on a gateway.
type subsShape struct {
	name     string // for the rows: "1 channel × 1000 subscriptions"
	channels int    // 1, or N with one subscription each
}

// subsFigures is one gateway's measurement.
type subsFigures struct {
	ready, idleCPU, rssMiB, connsPerSub, p99, delivered float64
}

// subsKafka and subsMemory measure one gateway carrying r.s.subs subscriptions (target 4 of issue 16):
// on one channel, and on as many channels with one each. See subsRun for what is measured.
func (r *runner) subsKafka(ctx context.Context) error {
	return r.subs(ctx, "subs-kafka", "KafkaChannel")
}
func (r *runner) subsMemory(ctx context.Context) error {
	return r.subs(ctx, "subs-memory", "InMemoryChannel")
}

func (r *runner) subs(ctx context.Context, path, kind string) error {
	n := r.s.subs
	shapes := []subsShape{
		{name: fmt.Sprintf("1 channel × %d subscriptions", n), channels: 1},
		{name: fmt.Sprintf("%d channels × 1 subscription", n), channels: n},
	}
	runs := map[bool]int{false: 2, true: 1}[r.s.quick]
	for _, sh := range shapes {
		var f struct{ ready, cpu, rss, conns, p99, delivered []float64 }
		for i := range runs {
			m, err := r.subsRun(ctx, path, kind, sh, i)
			if err != nil {
				return fmt.Errorf("%s: %w", sh.name, err)
			}
			fmt.Fprintf(os.Stderr, "   %s run %d: ready %.1fs, idle CPU %.1f%%, RSS %.0f MiB, %.2f broker connections per subscription, p99 %.1fms, %.4f delivered\n",
				sh.name, i+1, m.ready, m.idleCPU, m.rssMiB, m.connsPerSub, m.p99, m.delivered)
			f.ready, f.cpu, f.rss = append(f.ready, m.ready), append(f.cpu, m.idleCPU), append(f.rss, m.rssMiB)
			f.conns, f.p99, f.delivered = append(f.conns, m.connsPerSub), append(f.p99, m.p99), append(f.delivered, m.delivered)
		}
		note := fmt.Sprintf("%s (%s), subscriber: one bench sink; idle: %v after a %v settle; delivery: %d events/s spread over the subscriptions for %v, open loop",
			sh.name, kind, r.s.idleWindow, r.s.idleSettle, r.s.subsRate, r.s.duration)
		name := path + ": " + sh.name + ": "
		r.addTarget(name+"ready after start", "startup", "s", "< 60", f.ready, func(v float64) bool { return v < 60 }, note)
		r.addTarget(name+"idle CPU", "cpu", "% of a core", "< 5", f.cpu, func(v float64) bool { return v < 5 }, note)
		r.addTarget(name+"idle RSS", "memory", "MiB", "< 512", f.rss, func(v float64) bool { return v < 512 }, note)
		if kind == "KafkaChannel" {
			r.addRatio(name+"broker connections per subscription", "connections", "per subscription", "", 0, f.conns, nil, note)
		}
		r.addTarget(name+"delivered", "delivery", "fraction of events", "1", f.delivered, func(v float64) bool { return v >= 1 }, note)
		r.addRatio(name+"end-to-end p99", "latency", "ms", "", 0, f.p99, nil, note)
	}
	return nil
}

// addTarget adds a row without a baseline whose pass is ok(median).
func (r *runner) addTarget(path, metric, unit, target string, egs []float64, ok func(float64) bool, note string) {
	r.addRatio(path, metric, unit, target, 0, egs, nil, note)
	row := &r.rep.Rows[len(r.rep.Rows)-1]
	if row.Eventgate != nil {
		pass := ok(row.Eventgate.Median)
		row.Pass = &pass
	}
}

// subsRun starts a gateway on the shape's manifests and measures: the time from its start to /readyz
// answering 200; after idleSettle, its CPU over idleWindow (/proc/PID/stat), VmRSS, and its TCP
// connections to the broker (its sockets in /proc/PID/fd matched with /proc/PID/net/tcp); then
// subsRate deliveries/s spread over the subscriptions for the run's duration (one channel: subsRate/N
// events/s, each delivered N times; N channels: subsRate events/s, each to one of them in turn), every
// one counted at the sink, and the sink's end-to-end p99.
func (r *runner) subsRun(ctx context.Context, path, kind string, sh subsShape, run int) (subsFigures, error) {
	var m subsFigures
	n := r.s.subs
	base := fmt.Sprintf("%s-%s-%d-%d", path, r.id, sh.channels, run)
	var rate float64
	var count, expected int64
	if sh.channels == 1 {
		rate = float64(r.s.subsRate) / float64(n)
		count = int64(math.Ceil(rate * r.s.duration.Seconds()))
		expected = count * int64(n)
	} else {
		rate = float64(r.s.subsRate)
		count = int64(rate * r.s.duration.Seconds())
		expected = count
	}
	sink, url, err := r.sink(ctx, "--count", strconv.FormatInt(expected, 10))
	if err != nil {
		return m, err
	}
	defer sink.stop()

	chName := func(i int) string {
		if sh.channels == 1 {
			return base
		}
		return base + "-" + strconv.Itoa(i)
	}
	var b strings.Builder
	for i := range sh.channels {
		ch := chName(i)
		if kind == "KafkaChannel" {
			r.topic(ch)
			b.WriteString(kafkaChannel(ch))
		} else {
			b.WriteString(inMemoryChannel(ch))
		}
	}
	for i := range n {
		ch := chName(0)
		if sh.channels > 1 {
			ch = chName(i)
		}
		b.WriteString(subscription(fmt.Sprintf("s%d", i), kind, ch, fmt.Sprintf("%s/s%d", url, i)))
	}
	t0 := time.Now()
	gw, err := r.gatewayWithin(ctx, 5*time.Minute, nil, b.String())
	if err != nil {
		return m, err
	}
	defer gw.stop()
	m.ready = time.Since(t0).Seconds()

	if !sleepFor(ctx, r.s.idleSettle) {
		return m, ctx.Err()
	}
	cpu0, err := gw.cpuTime()
	if err != nil {
		return m, err
	}
	w0 := time.Now()
	if !sleepFor(ctx, r.s.idleWindow) {
		return m, ctx.Err()
	}
	cpu1, err := gw.cpuTime()
	if err != nil {
		return m, err
	}
	m.idleCPU = 100 * (cpu1 - cpu0).Seconds() / time.Since(w0).Seconds()
	rss, err := gw.statusKB("VmRSS")
	if err != nil {
		return m, err
	}
	m.rssMiB = float64(rss) / 1024
	if kind == "KafkaChannel" {
		conns, err := connectionsTo(gw.cmd.Process.Pid, r.s.brokers)
		if err != nil {
			return m, err
		}
		m.connsPerSub = float64(conns) / float64(n)
	}

	target := gw.ingress + "/bench/" + chName(0)
	args := []string{"--rate", strconv.FormatFloat(rate, 'f', -1, 64), "--count", strconv.FormatInt(count, 10),
		"--size", strconv.Itoa(r.s.size)}
	if sh.channels > 1 {
		target = gw.ingress + "/bench/" + base + "-{n}"
		args = append(args, "--targets", strconv.Itoa(sh.channels))
	}
	if _, err := r.load(ctx, target, args...); err != nil {
		return m, err
	}
	werr := sink.wait(ctx, 2*time.Minute)
	sink.stop()
	res, err := sinkOutput(sink)
	if err != nil {
		return m, fmt.Errorf("%w (waiting for %d deliveries: %v)", err, expected, werr)
	}
	m.delivered = float64(res.Events) / float64(expected)
	m.p99 = res.Latency.P99
	return m, nil
}

// sleepFor waits d; false when ctx ended first.
func sleepFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connectionsTo counts process pid's established TCP connections to the port of broker (host:port):
// the socket inodes among its open files, looked up in its network namespace's TCP tables.
func connectionsTo(pid int, broker string) (int, error) {
	_, portStr, err := net.SplitHostPort(broker)
	if err != nil {
		return 0, fmt.Errorf("broker %q: %w", broker, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("broker %q: port: %w", broker, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if in, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(in, "]")] = true
		}
	}
	wantPort := fmt.Sprintf(":%04X", port)
	count := 0
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !strings.HasSuffix(f[2], wantPort) {
				continue
			}
			if inodes[f[9]] {
				count++
			}
		}
	}
	return count, nil
}
