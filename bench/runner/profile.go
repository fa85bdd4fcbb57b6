package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profiler saves the gateway's profiles when scripts/bench runs with --profile DIR: each gateway a
// path starts serves Go's profiles on its admin port (admin.pprof), and the runner keeps a CPU
// profile of its first --duration of work (begun as soon as it is ready, when the path's load
// begins; a gateway whose work ends sooner is stopped only once that profile is written) and a heap
// profile taken when its work is done, as DIR/PATH-N-cpu.pprof and
// DIR/PATH-N-heap.pprof (N counts the gateways of the path). Read them with `go tool pprof`.
type profiler struct {
	dir     string
	seconds int

	mu   sync.Mutex
	path string         // the path being run
	n    map[string]int // gateways started per path
}

func newProfiler(dir string, d time.Duration) *profiler {
	return &profiler{dir: dir, seconds: max(1, int(d.Round(time.Second)/time.Second)), n: map[string]int{}}
}

// setPath names the path whose gateways come next.
func (p *profiler) setPath(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.path = path
}

// start begins the CPU profile of the gateway whose admin port is at admin; the returned function
// takes the heap profile and waits for the CPU one (call it before stopping the gateway). A profile
// that cannot be taken is reported on stderr: it never fails the measurement.
func (p *profiler) start(ctx context.Context, admin string) (finish func()) {
	p.mu.Lock()
	p.n[p.path]++
	prefix := filepath.Join(p.dir, p.path+"-"+strconv.Itoa(p.n[p.path]))
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		save(ctx, admin+"/debug/pprof/profile?seconds="+strconv.Itoa(p.seconds), prefix+"-cpu.pprof")
	}()
	return func() {
		save(ctx, admin+"/debug/pprof/heap", prefix+"-heap.pprof")
		<-done // a gateway done sooner than the profile's seconds idles until it is written
		cancel()
	}
}

// save writes what GET url answers to file.
func save(ctx context.Context, url, file string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "profile %s: %v\n", filepath.Base(file), err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "profile %s: %s\n", filepath.Base(file), resp.Status)
		return
	}
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "profile %s: %v\n", filepath.Base(file), err)
		return
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		fmt.Fprintf(os.Stderr, "profile %s: %v\n", filepath.Base(file), err)
	}
	f.Close()
}
