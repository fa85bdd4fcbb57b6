package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// triggerTypes is how many types the load spreads its events over: each trigger passes one of them,
// 1% of the events.
const triggerTypes = 100

// triggers measures one Kafka broker with 1, 10 and 100 triggers, each passing its own type of the
// triggerTypes the load spreads events over: ingress events/s, deliveries/s, the gateway's CPU per
// ingested event and its peak RSS. The 1-trigger gateway, measured in the same run (interleaved), is
// the baseline of the others.
func (r *runner) triggers(ctx context.Context) error {
	counts := []int{1, 10, 100}
	type figures struct{ ingress, deliveries, cpu, rss []float64 }
	figs := map[int]*figures{}
	for _, n := range counts {
		figs[n] = &figures{}
	}
	runs := min(r.s.runs, 3)
	for i := range runs {
		order := counts
		if i%2 == 1 {
			order = []int{100, 10, 1}
		}
		for _, n := range order {
			m, err := r.triggerRun(ctx, n, i)
			if err != nil {
				return fmt.Errorf("%d triggers: %w", n, err)
			}
			f := figs[n]
			f.ingress, f.deliveries = append(f.ingress, m.ingress), append(f.deliveries, m.deliveries)
			f.cpu, f.rss = append(f.cpu, m.cpuPerEvent), append(f.rss, m.rssMiB)
			fmt.Fprintf(os.Stderr, "   run %d, %3d triggers: ingress %.0f/s, deliveries %.0f/s, %.1f µs CPU per event, RSS %.0f MiB\n",
				i+1, n, m.ingress, m.deliveries, m.cpuPerEvent, m.rssMiB)
		}
	}
	note := fmt.Sprintf("Kafka broker (3 partitions), events over %d types, each trigger passes 1%%; %d B, closed loop c=%d; baseline: 1 trigger",
		triggerTypes, r.s.size, r.s.concurrency)
	for _, n := range counts[1:] {
		target := ""
		if n == 100 {
			target = "< 3× of 1 trigger"
		}
		r.addRatio(fmt.Sprintf("%d triggers vs 1: CPU per ingested event", n), "cpu", "µs/event", target, 0,
			figs[n].cpu, figs[1].cpu, note)
		if n == 100 && len(figs[n].cpu) > 0 {
			row := &r.rep.Rows[len(r.rep.Rows)-1]
			if row.Ratio != nil {
				pass := *row.Ratio < 3
				row.Pass = &pass
			}
		}
	}
	for _, n := range counts {
		r.addRatio(fmt.Sprintf("%d trigger(s): ingress", n), "throughput", "events/s", "", 0, figs[n].ingress, nil, note)
		r.addRatio(fmt.Sprintf("%d trigger(s): deliveries", n), "throughput", "events/s", "", 0, figs[n].deliveries, nil, note)
		r.addRatio(fmt.Sprintf("%d trigger(s): peak RSS", n), "memory", "MiB", "", 0, figs[n].rss, nil, note)
	}
	return nil
}

type triggerFigures struct {
	ingress, deliveries, cpuPerEvent, rssMiB float64
}

// triggerRun starts a gateway with a Kafka broker and n triggers towards a sink, loads the broker for
// the run's duration, waits until every trigger has committed everything, and measures.
func (r *runner) triggerRun(ctx context.Context, n, run int) (triggerFigures, error) {
	var m triggerFigures
	broker := fmt.Sprintf("trig-%s-%d-%d", r.id, n, run)
	r.topics = append(r.topics, "eventgate.bench.broker."+broker)
	sink, url, err := r.sink(ctx)
	if err != nil {
		return m, err
	}
	defer sink.stop()
	var b strings.Builder
	b.WriteString(kafkaBroker(broker))
	for k := range n {
		fmt.Fprintf(&b, `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t%d, namespace: bench}
spec:
  broker: %s
  filter: {attributes: {type: dev.eventgate.bench.%d}}
  subscriber: {uri: "%s/t%d"}
---
`, k, broker, k, url, k)
	}
	gw, err := r.gateway(ctx, b.String(), "--set", "kafka.defaultPartitions=3")
	if err != nil {
		return m, err
	}
	defer gw.stop()
	cpu0, err := gw.cpuTime()
	if err != nil {
		return m, err
	}
	res, err := r.load(ctx, gw.ingress+"/bench/"+broker, "--duration", r.s.duration.String(), "--size", strconv.Itoa(r.s.size),
		"--concurrency", strconv.Itoa(r.s.concurrency), "--types", strconv.Itoa(triggerTypes))
	if err != nil {
		return m, err
	}
	if err := waitTriggersCaughtUp(ctx, gw.admin, n, 2*time.Minute); err != nil {
		return m, err
	}
	cpu1, err := gw.cpuTime()
	if err != nil {
		return m, err
	}
	hwm, err := gw.statusKB("VmHWM")
	if err != nil {
		return m, err
	}
	gw.stop()
	sink.stop()
	sr, err := sinkOutput(sink)
	if err != nil {
		return m, err
	}
	m.ingress = res.EventsPS
	m.deliveries = sr.EventsPS
	m.cpuPerEvent = float64((cpu1 - cpu0).Microseconds()) / float64(max(res.Events, 1))
	m.rssMiB = float64(hwm) / 1024
	return m, nil
}

// waitTriggersCaughtUp polls the gateway's /status until it lists n triggers, each with lag 0.
func waitTriggersCaughtUp(ctx context.Context, admin string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/status", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var st struct {
				Triggers []struct {
					Name string `json:"name"`
					Lag  *int64 `json:"lag"`
				} `json:"triggers"`
			}
			err := json.NewDecoder(resp.Body).Decode(&st)
			_ = resp.Body.Close()
			done := err == nil && len(st.Triggers) == n
			for _, t := range st.Triggers {
				if t.Lag == nil || *t.Lag != 0 {
					done = false
					last = fmt.Sprintf("trigger %s lag %v", t.Name, t.Lag)
				}
			}
			if done {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("triggers not caught up within %v (%s)", limit, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
