package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one child process: started by start, stopped (SIGTERM, then SIGKILL) and waited for by stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	exited chan struct{}
	err    error
	// beforeStop, when set, runs once as stop begins (a gateway's profiles are saved then).
	beforeStop func()
}

// start runs bin with args and extra environment, and waits until a line of its output matches ready
// (nil: do not wait), at most 60s. It returns the submatches of that line.
func start(ctx context.Context, name string, ready *regexp.Regexp, env []string, bin string, args ...string) (*proc, []string, error) {
	return startWithin(ctx, 60*time.Second, name, ready, env, bin, args...)
}

// startWithin is start waiting at most limit for the ready line.
func startWithin(ctx context.Context, limit time.Duration, name string, ready *regexp.Regexp, env []string, bin string, args ...string) (*proc, []string, error) {
	p := &proc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = outW, errW
	if err := p.cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	lines := make(chan []string, 2)
	var scanners sync.WaitGroup
	scan := func(r io.Reader, keep *lockedBuffer) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = keep.Write([]byte(line + "\n"))
			if ready != nil {
				if m := ready.FindStringSubmatch(line); m != nil {
					select {
					case lines <- m:
					default:
					}
				}
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}
	scanners.Go(func() { scan(outR, &p.stdout) })
	scanners.Go(func() { scan(errR, &p.stderr) })
	go func() {
		p.err = p.cmd.Wait()
		_ = outW.Close()
		_ = errW.Close()
		scanners.Wait()
		close(p.exited)
	}()
	if ready == nil {
		return p, nil, nil
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case m := <-lines:
		return p, m, nil
	case <-p.exited:
		return nil, nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, p.err, tail(p.stderr.String(), 20))
	case <-t.C:
		p.stop()
		return nil, nil, fmt.Errorf("%s not ready within %v\n%s", name, limit, tail(p.stderr.String(), 20))
	case <-ctx.Done():
		p.stop()
		return nil, nil, ctx.Err()
	}
}

// stop runs beforeStop, sends SIGTERM, waits up to 30s, then kills; it returns once the process has
// exited.
func (p *proc) stop() {
	if p == nil {
		return
	}
	if f := p.beforeStop; f != nil {
		p.beforeStop = nil
		f()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// wait waits for the process to exit by itself, up to limit.
func (p *proc) wait(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s: %w\n%s", p.name, p.err, tail(p.stderr.String(), 20))
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s did not finish within %v", p.name, limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusKB reads a "Key: N kB" line of /proc/PID/status.
func (p *proc) statusKB(key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, p.cmd.Process.Pid)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200 or limit passes.
func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New(url + " not ready in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuTime is the user and system CPU time the process has used, from /proc/PID/stat (in clock ticks
// of 1/100 s, the value of CLK_TCK on Linux).
func (p *proc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", p.cmd.Process.Pid, s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", p.cmd.Process.Pid, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", p.cmd.Process.Pid, s)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// cpuUsed is the process's user and system CPU time so far: from /proc while it runs, from its exit
// status once it has exited (a baseline that stops by itself after --count).
func (p *proc) cpuUsed() (time.Duration, error) {
	exitedCPU := func() time.Duration { return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime() }
	select {
	case <-p.exited:
		return exitedCPU(), nil
	default:
	}
	d, err := p.cpuTime()
	if err == nil {
		return d, nil
	}
	t := time.NewTimer(5 * time.Second) // it exited between the check and the read: wait to be reaped
	defer t.Stop()
	select {
	case <-p.exited:
		return exitedCPU(), nil
	case <-t.C:
		return 0, err
	}
}
