package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process peerbench started; it is only ever stopped by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// stopFn, when set, replaces the SIGTERM/SIGKILL stop (nginx: SIGQUIT by pid file).
	stopFn func()
}

// procs tracks every child so cleanup can stop them all, also after SIGINT.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs name with args, stdout and stderr going to the given writers (nil: the
// log file logPath).
func (ps *procs) start(name, logPath string, stdout io.Writer, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	var logf *os.File
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		logf = f
		cmd.Stderr = f
		cmd.Stdout = f
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stdin = nil
	// Own process group: a terminal Ctrl-C reaches only peerbench, which then stops the
	// children in order. Pdeathsig covers peerbench itself being killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process (by PID only), waits up to grace, then SIGKILLs it.
func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	if p.stopFn != nil {
		p.stopFn()
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.cmd.Process.Kill()
	<-p.done
}

// stopAll stops children newest first (load client, publisher, then the server).
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(6 * time.Second)
	}
}

// clockTicks is USER_HZ for /proc/PID/stat.
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}()

// cpuSeconds is utime+stime of pid from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After "pid (comm)": state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return (u + s) / clockTicks, nil
}

// rssKiB is VmRSS of pid from /proc/PID/status.
func rssKiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

var httpc = &http.Client{Timeout: 5 * time.Second}

// metric reads one unlabelled sample from the node's Prometheus endpoint.
func metric(base, name string) (float64, error) {
	resp, err := httpc.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not exposed", name)
}

// freePorts picks n distinct ports in [20000, 30000) that are free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for tries := 0; tries < 200 && len(out) < n; tries++ {
		p := 20000 + rand.IntN(10000)
		if seen[p] {
			continue
		}
		seen[p] = true
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, fmt.Errorf("found only %d free ports", len(out))
	}
	return out, nil
}

// waitFor polls cond every 100 ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	return waitForEvery(ctx, timeout, 100*time.Millisecond, what, cond)
}

// waitForEvery is waitFor polling every period (a cluster view of 1,000 streams is not
// free to serve).
func waitForEvery(ctx context.Context, timeout, period time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		if err := sleep(ctx, period); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sleepUntil waits until at or ctx ends.
func sleepUntil(ctx context.Context, at time.Time) error { return sleep(ctx, time.Until(at)) }

// canDial reports whether a TCP connect to addr succeeds now.
func canDial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// treeCPU sums utime+stime over pids (processes that vanished count 0).
func treeCPU(pids []int) (float64, error) { return sumOver(pids, cpuSeconds) }

// treeRSS sums VmRSS over pids.
func treeRSS(pids []int) (float64, error) { return sumOver(pids, rssKiB) }

// sumOver adds read(pid) over pids, skipping processes it cannot read; it fails only
// when it can read none.
func sumOver(pids []int, read func(int) (float64, error)) (float64, error) {
	var sum float64
	var firstErr error
	n := 0
	for _, p := range pids {
		v, err := read(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
		sum += v
	}
	switch {
	case n > 0:
		return sum, nil
	case firstErr == nil:
		return 0, fmt.Errorf("no processes")
	}
	return 0, firstErr
}

// hostCPU returns busy and total jiffies of the whole machine from /proc/stat.
func hostCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}
