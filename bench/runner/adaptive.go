package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kneeCell is one subscriber of the adaptive path's grid: Knee requests served at once, each for
// Service, the rest queued.
type kneeCell struct {
	Knee    int
	Service time.Duration
}

// adaptiveGrid is the adaptive path's grid of subscribers: the range of knees (2 to 64 in
// flight) and service times (1 to 50 ms); --quick takes its corners; --adaptive-cells names the
// cells instead (see parseCells).
func (r *runner) adaptiveGrid() ([]kneeCell, error) {
	if r.s.adaptiveOnly != "" {
		return parseCells(r.s.adaptiveOnly)
	}
	knees, services := []int{2, 8, 32, 64}, []time.Duration{time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond}
	if r.s.quick {
		knees, services = []int{2, 32}, []time.Duration{time.Millisecond, 50 * time.Millisecond}
	}
	var cells []kneeCell
	for _, k := range knees {
		for _, s := range services {
			cells = append(cells, kneeCell{k, s})
		}
	}
	return cells, nil
}

// parseCells reads --adaptive-cells: KNEExSERVICE items separated by commas, e.g. "2x50ms,32x10ms"
// (a knee of at least 1, a positive Go duration).
func parseCells(list string) ([]kneeCell, error) {
	var cells []kneeCell
	for _, item := range strings.Split(list, ",") {
		k, s, ok := strings.Cut(strings.TrimSpace(item), "x")
		knee, err := strconv.Atoi(k)
		if !ok || err != nil || knee < 1 {
			return nil, fmt.Errorf("--adaptive-cells: %q is not KNEExSERVICE with a knee of at least 1 (e.g. 2x50ms)", item)
		}
		service, err := time.ParseDuration(s)
		if err != nil || service <= 0 {
			return nil, fmt.Errorf("--adaptive-cells: %q: the service time %q is not a positive duration (e.g. 50ms)", item, s)
		}
		cells = append(cells, kneeCell{knee, service})
	}
	return cells, nil
}

// fixedLimits are the fixed limits an adaptive run is compared with: half the knee, the knee, twice
// the knee, and the default dispatch.maxInFlight (64).
func fixedLimits(knee int) []int {
	l := []int{max(1, knee/2), knee, 2 * knee, 64}
	slices.Sort(l)
	return slices.Compact(l)
}

// kneeRun is one drain's figures.
type kneeRun struct {
	thr, p99 float64 // events/s from the first arrival to the last answer; response-time p99 at the sink, ms
}

// adaptive measures target 6 of issue 16: for each subscriber of the grid (`bench sink --knee K
// --service S`), how fast a gateway drains an in-memory backlog to it with the adaptive limit (the
// default configuration), beside the same with fixed limits (dispatch.adaptive=false,
// dispatch.maxInFlight=L), interleaved. Per cell it reports the adaptive throughput over the best
// fixed limit's (target ≥ 0.8) and the adaptive response-time p99 at the subscriber over that
// limit's (target ≤ 1.5). The best fixed limit is the one with the highest median throughput; among
// those within 5% of it, the one with the lowest p99 (the knee itself, usually: above it a fixed limit
// only queues at the subscriber). Throughput is counted from the first arrival at the sink to its last
// answer (arrivals run ahead of a queueing subscriber's answers). Each drain holds enough events for about --adaptive-seconds at the
// subscriber's capacity (K/S), at least 300 and at most 30,000 (a gateway on 2 cores delivers a few
// thousand events/s, well below the capacity of a knee of 32 or 64 at 1 ms).
func (r *runner) adaptive(ctx context.Context) error {
	runs := r.s.adaptiveRuns
	grid, err := r.adaptiveGrid()
	if err != nil {
		return err
	}
	for _, c := range grid {
		capacity := float64(c.Knee) / c.Service.Seconds()
		n := min(max(int64(300), int64(capacity*r.s.adaptiveSecs.Seconds())), 30000)
		sinkArgs := []string{"--knee", strconv.Itoa(c.Knee), "--service", c.Service.String()}
		if r.s.adaptiveStalls > 0 {
			sinkArgs = append(sinkArgs, "--stalls", strconv.FormatFloat(r.s.adaptiveStalls, 'g', -1, 64))
		}
		limits := fixedLimits(c.Knee)
		configs := append([]int{0}, limits...) // 0: adaptive
		got := map[int][]kneeRun{}
		fmt.Fprintf(os.Stderr, "   knee %d, service %v: %d events per drain (capacity %.0f/s)\n", c.Knee, c.Service, n, capacity)
		for i := range runs {
			order := slices.Clone(configs)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, l := range order {
				var gwArgs []string
				name := "adaptive"
				if l > 0 {
					gwArgs = []string{"--set", "dispatch.adaptive=false", "--set", "dispatch.maxInFlight=" + strconv.Itoa(l)}
					name = fmt.Sprintf("fixed %d", l)
				}
				res, _, err := r.memoryDrain(ctx, n, sinkArgs, gwArgs...)
				if err != nil {
					return fmt.Errorf("knee %d, service %v, %s: %w", c.Knee, c.Service, name, err)
				}
				got[l] = append(got[l], kneeRun{res.AnsweredPS, res.Response.P99})
				fmt.Fprintf(os.Stderr, "   run %d %-9s %7.0f events/s, response p99 %.1fms\n", i+1, name, res.AnsweredPS, res.Response.P99)
			}
		}
		r.addKneeRows(c, n, limits, got)
	}
	return nil
}

// medianOf returns the median of f over runs.
func medianOf(runs []kneeRun, f func(kneeRun) float64) float64 {
	v := make([]float64, len(runs))
	for i, x := range runs {
		v[i] = f(x)
	}
	return newSeries(v).Median
}

func kneeThr(k kneeRun) float64 { return k.thr }
func kneeP99(k kneeRun) float64 { return k.p99 }

// addKneeRows adds one cell's two rows: adaptive throughput against the best fixed limit's, and
// adaptive response-time p99 against that limit's.
func (r *runner) addKneeRows(c kneeCell, n int64, limits []int, got map[int][]kneeRun) {
	best, bestThr := 0, 0.0
	for _, l := range limits {
		bestThr = max(bestThr, medianOf(got[l], kneeThr))
	}
	for _, l := range limits {
		if medianOf(got[l], kneeThr) >= 0.95*bestThr && (best == 0 || medianOf(got[l], kneeP99) < medianOf(got[best], kneeP99)) {
			best = l
		}
	}
	var fixed []string
	for _, l := range limits {
		fixed = append(fixed, fmt.Sprintf("%d: %.0f/s p99 %.1fms", l, medianOf(got[l], kneeThr), medianOf(got[l], kneeP99)))
	}
	col := func(runs []kneeRun, f func(kneeRun) float64) []float64 {
		v := make([]float64, len(runs))
		for i, x := range runs {
			v[i] = f(x)
		}
		return v
	}
	path := fmt.Sprintf("adaptive vs best fixed limit, knee %d, service %v", c.Knee, c.Service)
	sink := fmt.Sprintf("--knee %d --service %v", c.Knee, c.Service)
	if st := r.s.adaptiveStalls; st > 0 {
		path += fmt.Sprintf(", %g stalls/s", st)
		sink += fmt.Sprintf(" --stalls %g", st)
	}
	note := fmt.Sprintf("%d-event in-memory backlog to `bench sink %s`; best fixed limit %d; fixed limits (median): %s",
		n, sink, best, strings.Join(fixed, ", "))
	r.addRatio(path, "throughput", "events/s", "≥ 0.8", 0.8, col(got[0], kneeThr), col(got[best], kneeThr), note)
	r.addRatio(path+", response p99", "latency", "ms", "≤ 1.5", 0, col(got[0], kneeP99), col(got[best], kneeP99),
		"time from arrival to answer at the subscriber (its queue and service time); baseline: the best fixed limit")
	if row := &r.rep.Rows[len(r.rep.Rows)-1]; row.Ratio != nil {
		pass := *row.Ratio <= 1.5
		row.Pass = &pass
	}
}
