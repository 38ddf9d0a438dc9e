package security

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The latency probe runs in a process of its own (this test binary,
// re-executed with probeEnv set): sampling from the test process would
// measure how long the probe goroutine waits behind the flood's 32 workers in
// the test process's own scheduler, not how fast the node answers.
const (
	probeEnv     = "SECURITY_LATENCY_PROBE" // JSON probeSpec
	probeMaxRuns = 600
)

// probeTarget is one request the probe times.
type probeTarget struct {
	URL     string
	Headers http.Header
	Body    string
	Want    string // substring of a good answer
}

type probeSpec struct {
	Targets []probeTarget // timed one after the other in every round
	Every   time.Duration
	Min     int // rounds taken at least, even after stdin closed
	// NodePID is the process behind Targets[0]: while its request runs,
	// the probe measures how long that process's threads (and its own)
	// waited for a CPU, from /proc/<pid>/task/*/schedstat.
	NodePID int
}

// runQueueWaits returns, per thread of pid, the nanoseconds it has spent
// runnable but waiting for a CPU (second field of schedstat); nil when the
// kernel does not provide it.
func runQueueWaits(pid int) map[string]int64 {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make(map[string]int64, len(tasks))
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				out[t.Name()] = v
			}
		}
	}
	return out
}

// maxWait is the longest any one thread waited for a CPU between two readings.
func maxWait(before, after map[string]int64) time.Duration {
	var m int64
	for tid, a := range after {
		if b, ok := before[tid]; ok && a-b > m {
			m = a - b
		}
	}
	return time.Duration(m)
}

// runProbe is the child: after a warm-up it writes "ready", then one line
// per round ("ok <ns> <ns>…", one duration per target, or "err <text>")
// every spec.Every until its stdin is closed and it has spec.Min rounds.
func runProbe() int {
	var spec probeSpec
	if err := json.Unmarshal([]byte(os.Getenv(probeEnv)), &spec); err != nil {
		fmt.Println("err bad spec:", err)
		return 1
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	once := func(pt probeTarget) (time.Duration, error) {
		req, err := http.NewRequest(http.MethodPost, pt.URL, strings.NewReader(pt.Body))
		if err != nil {
			return 0, err
		}
		req.Header = pt.Headers.Clone()
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return time.Since(start), err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), pt.Want) {
			return d, fmt.Errorf("%s: HTTP %d %q %v", pt.URL, resp.StatusCode, b, err)
		}
		return d, nil
	}
	self := os.Getpid()
	// round times every target and then appends how long the node's and
	// the probe's threads waited for a CPU during the first request.
	round := func() ([]time.Duration, error) {
		var ds []time.Duration
		var nodeWait, selfWait time.Duration
		for i, pt := range spec.Targets {
			var nb, sb map[string]int64
			if i == 0 {
				nb, sb = runQueueWaits(spec.NodePID), runQueueWaits(self)
			}
			d, err := once(pt)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				nodeWait = maxWait(nb, runQueueWaits(spec.NodePID))
				selfWait = maxWait(sb, runQueueWaits(self))
			}
			ds = append(ds, d)
		}
		return append(ds, nodeWait, selfWait), nil
	}
	for i := 0; i < 3; i++ {
		if _, err := round(); err != nil {
			fmt.Println("err warm-up:", err)
			return 1
		}
	}
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for i := 0; i < probeMaxRuns; i++ {
		ds, err := round()
		if err != nil {
			fmt.Fprintln(out, "err", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			line := "ok"
			for _, d := range ds {
				line += " " + strconv.FormatInt(d.Nanoseconds(), 10)
			}
			fmt.Fprintln(out, line)
		}
		out.Flush()
		select {
		case <-stdinClosed:
			if i+1 >= spec.Min {
				return 0
			}
		default:
		}
		time.Sleep(spec.Every)
	}
	return 0
}

// latencyProbe is a running probe process.
type latencyProbe struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	ended sync.Once
}

// startProbe starts the probe and waits for its warm-up.
func startProbe(t testing.TB, spec probeSpec) *latencyProbe {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"="+string(b))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the latency probe: %v", err)
	}
	p := &latencyProbe{cmd: cmd, stdin: stdin, lines: make(chan string, probeMaxRuns+8)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(p.kill) // when the test ends early
	select {
	case l, ok := <-p.lines:
		if !ok || l != "ready" {
			p.kill()
			t.Fatalf("latency probe did not start: %q", l)
		}
	case <-time.After(15 * time.Second):
		p.kill()
		t.Fatalf("latency probe not ready within 15s")
	}
	return p
}

// kill ends the probe (by its PID) and waits for it; a no-op once it ended.
func (p *latencyProbe) kill() {
	p.ended.Do(func() {
		_ = p.stdin.Close()
		_ = p.cmd.Process.Kill()
		for range p.lines {
		}
		_ = p.cmd.Wait()
	})
}

// finish closes the probe's stdin and collects its rounds (bounded wait).
func (p *latencyProbe) finish(t testing.TB) ([][]time.Duration, []string) {
	t.Helper()
	_ = p.stdin.Close()
	var lat [][]time.Duration
	var errs []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.ended.Do(func() {
					if err := p.cmd.Wait(); err != nil {
						errs = append(errs, "probe exited: "+err.Error())
					}
				})
				return lat, errs
			}
			if v, found := strings.CutPrefix(l, "ok "); found {
				var ds []time.Duration
				for _, f := range strings.Fields(v) {
					ns, _ := strconv.ParseInt(f, 10, 64)
					ds = append(ds, time.Duration(ns))
				}
				lat = append(lat, ds)
			} else {
				errs = append(errs, l)
			}
		case <-timeout:
			t.Errorf("latency probe did not finish within 60s: killed")
			p.kill()
			return lat, errs
		}
	}
}
