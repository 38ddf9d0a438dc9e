// Command wsbench is the load generator of go-websocket: it opens many
// WebSocket connections (from several loopback source addresses and, with
// -procs, several processes), publishes through the HTTP API, and measures
// throughput, publish-to-receive latency, lost/duplicated/out-of-order
// messages and the server's CPU and memory (from /proc). It can run the same
// fanout/unicast/idle scenarios against Centrifugo v6 for comparison.
//
// Run "wsbench -help" for the scenarios, flags and examples.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		// A client process of -procs: the parent coordinates it; ^C goes
		// to the parent, which stops us through stdin.
		signal.Ignore(os.Interrupt, syscall.SIGTERM)
		os.Exit(runChild(os.Stdin, os.Stdout))
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wsbench: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	r, err := newRunner(ctx, cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "wsbench: %v\n", err)
		return 2
	}
	rep, failed, err := r.runScenario()
	r.prog.stop()
	if err == nil && ctx.Err() != nil {
		why := "interrupted"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("-timeout %s reached", cfg.Timeout)
		}
		err = fmt.Errorf("run cut short (%s): the numbers above are partial", why)
		if rep != nil {
			rep.note("run cut short (%s): partial numbers", why)
		}
	}
	if rep != nil {
		rep.print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wsbench: %v\n", err)
		return 1
	}
	if cfg.Strict && failed {
		fmt.Fprintln(stderr, "wsbench: -strict: messages were lost, duplicated or reordered, or connections/API calls failed")
		return 3
	}
	return 0
}

// runner coordinates one run.
type runner struct {
	cfg      *Config
	ctx      context.Context
	urls     []string // normalized base URLs
	api      *API
	run      string
	shards   []Shard
	starts   []int // global index of each shard's first client
	stdout   io.Writer
	prog     *progressLine
	toolCPU0 time.Duration
}

func newRunner(ctx context.Context, cfg *Config, stdout, stderr io.Writer) (*runner, error) {
	r := &runner{cfg: cfg, ctx: ctx, stdout: stdout}
	for _, raw := range splitList(cfg.URLList) {
		u, err := normalizeTarget(ctx, raw, net.DefaultResolver.LookupIPAddr)
		if err != nil {
			return nil, err
		}
		r.urls = append(r.urls, u)
	}
	for _, u := range r.urls {
		v6 := strings.Contains(u, "[")
		for _, ip := range cfg.Srcs {
			if (ip.To4() == nil) != v6 {
				return nil, fmt.Errorf("-src %s cannot reach %s: source and target must both be IPv4 or both IPv6", ip, u)
			}
		}
	}
	for _, pid := range cfg.PIDs {
		if _, err := readProc(pid); err != nil {
			return nil, fmt.Errorf("-pid: %v", err)
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r.run = hex.EncodeToString(b[:])
	r.api = newAPI(cfg.Target, cfg.System, cfg.Token, cfg.APIKey, max(cfg.Workers, cfg.Publishers)+4)
	r.api.ack = cfg.ackSuffix()
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = isTerminal(f)
	}
	every := cfg.Progress
	if cfg.Quiet {
		every = 0
	}
	r.prog = newProgressLine(stderr, tty, every)
	if cfg.Quiet {
		r.prog.w = io.Discard
	}
	if per := (cfg.Clients + cfg.Procs - 1) / cfg.Procs; cfg.Scenario != "connect-churn" {
		var lim syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && uint64(per)+200 > lim.Cur {
			fit := max(int(lim.Cur)-300, 1)
			r.prog.printf("wsbench: warning: %d connections per process but the open-file limit is %d: use -procs %d or more\n",
				per, lim.Cur, (cfg.Clients+fit-1)/fit)
		}
	}
	return r, nil
}

func (r *runner) runScenario() (*report, bool, error) {
	r.toolCPU0 = rusageCPU()
	defer r.api.close()
	switch r.cfg.Scenario {
	case "fanout":
		return r.fanout()
	case "unicast":
		return r.unicast()
	case "idle":
		return r.idle()
	case "connect-churn":
		return r.churn()
	case "cluster":
		return r.cluster()
	case "resume":
		return r.resume()
	}
	return nil, false, fmt.Errorf("unknown scenario %q", r.cfg.Scenario)
}

// register registers the system on every node (gows only).
func (r *runner) register() error {
	if r.cfg.Target != "gows" {
		return nil
	}
	for _, u := range r.urls {
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		err := r.api.Register(ctx, u)
		cancel()
		if err != nil {
			return fmt.Errorf("register system %q on %s: %w", r.cfg.System, u, err)
		}
	}
	return nil
}

// splitCount divides n as evenly as possible into k parts.
func splitCount(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// startShards starts -procs shards (in-process when -procs is 1).
func (r *runner) startShards(mode string, clients int, group string, perClient bool) error {
	procs := r.cfg.Procs
	srcs := make([]string, len(r.cfg.Srcs))
	for i, ip := range r.cfg.Srcs {
		srcs[i] = ip.String()
	}
	deadline, _ := r.ctx.Deadline()
	counts := splitCount(clients, procs)
	churnCounts := splitCount(r.cfg.Count, procs)
	start := 0
	for p := range procs {
		sc := shardConfig{
			Mode: mode, Target: r.cfg.Target, URLs: r.urls, System: r.cfg.System,
			Token: r.cfg.Token, ConnectToken: r.cfg.ConnectToken, Srcs: srcs,
			Start: start, Count: counts[p], Group: group, PerClientChannel: perClient,
			Run: r.run, DialConc: r.cfg.DialConc, ConnectRate: r.cfg.ConnectRate / float64(procs),
			Deadline: deadline, ProgressEvery: 100 * time.Millisecond,
			Lanes: r.cfg.Publishers, Ack: r.cfg.Ack,
		}
		if mode == "churn" {
			sc.Start = p * 1_000_003 // any offset: only used to rotate sources and nodes
			sc.ChurnCount = int64(churnCounts[p])
			if r.cfg.Count > 0 && sc.ChurnCount == 0 {
				continue
			}
			sc.ChurnDuration = r.cfg.Duration
			sc.ChurnConc = r.cfg.Concurrency
		}
		var s Shard
		var err error
		if procs == 1 {
			s, err = startLocalShard(r.ctx, sc)
		} else {
			s, err = startRemoteShard(sc)
		}
		if err != nil {
			r.stopAll()
			return err
		}
		r.shards = append(r.shards, s)
		r.starts = append(r.starts, sc.Start)
		start += counts[p]
	}
	return nil
}

func (r *runner) progress() Progress {
	var p Progress
	done := len(r.shards) > 0
	for _, s := range r.shards {
		sp := s.Progress()
		p.add(sp)
		done = done && sp.Done
	}
	p.Done = done
	return p
}

// readyAll waits for every shard; ids is indexed by global client index.
type readyAll struct {
	ids         []string
	connected   int
	bound       int
	connectTime time.Duration
}

func (r *runner) waitReady(clients int) (readyAll, error) {
	out := readyAll{ids: make([]string, clients)}
	start := time.Now()
	grouped := r.cfg.Scenario == "fanout" && r.cfg.Target == "gows"
	r.prog.phase(rateStatus("connecting", func() int64 { return r.progress().Connected }, func(n int64) string {
		p := r.progress()
		s := fmt.Sprintf("conns %d/%d  errors %d", n, clients, p.ConnErrors)
		if grouped {
			s += fmt.Sprintf("  bound %d  bind errors %d", p.Bound, p.BindErrors)
		}
		return s
	}))
	defer r.prog.phase(nil)
	infos := make([]ReadyInfo, len(r.shards))
	errs := make([]error, len(r.shards))
	var wg sync.WaitGroup
	for i, s := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i], errs[i] = s.Ready(r.ctx)
		}()
	}
	wg.Wait()
	out.connectTime = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	for i, info := range infos {
		copy(out.ids[r.starts[i]:], info.IDs)
		out.connected += info.Connected
		out.bound += info.Bound
	}
	return out, nil
}

// rateStatus builds a status function showing a counter and its rate.
func rateStatus(label string, counter func() int64, rest func(int64) string) func() string {
	var mu sync.Mutex
	var last int64
	lastT := time.Now()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		n := counter()
		now := time.Now()
		rate := float64(n-last) / now.Sub(lastT).Seconds()
		last, lastT = n, now
		return fmt.Sprintf("%s  %s  (%s/s)", label, rest(n), fmtRate(rate))
	}
}

// snapshotAll merges every shard's snapshot.
func (r *runner) snapshotAll(reset bool) (ShardResult, error) {
	var out ShardResult
	for _, s := range r.shards {
		sr, err := s.Snapshot(reset)
		if err != nil {
			return out, err
		}
		out.merge(sr)
	}
	return out, nil
}

// stopAll stops every shard (in parallel) and merges the results.
func (r *runner) stopAll() (ShardResult, error) {
	results := make([]ShardResult, len(r.shards))
	errs := make([]error, len(r.shards))
	var wg sync.WaitGroup
	for i, s := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Stop()
		}()
	}
	wg.Wait()
	var out ShardResult
	for _, res := range results {
		out.merge(res)
	}
	return out, errors.Join(errs...)
}

// rusageCPU is the CPU used by this process plus its waited-for children
// (the -procs client processes, once stopped).
func rusageCPU() time.Duration {
	var sum time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			sum += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return sum
}

// peakRSS is the peak RSS of this process and of its largest waited-for
// child, in bytes.
func peakRSS() (self, child uint64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = uint64(ru.Maxrss) * 1024
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		child = uint64(ru.Maxrss) * 1024
	}
	return self, child
}

// toolCPU is the CPU wsbench used since the run started (call it after the
// shards were stopped, so that client processes are included).
func (r *runner) toolCPU() time.Duration { return rusageCPU() - r.toolCPU0 }

// sample reads the server processes (ok is false without -pid or on error).
func (r *runner) sample() (procSample, bool) {
	if len(r.cfg.PIDs) == 0 {
		return procSample{}, false
	}
	s, err := readProcs(r.cfg.PIDs)
	if err != nil {
		r.prog.printf("wsbench: reading server process: %v\n", err)
		return procSample{}, false
	}
	return s, true
}

// sleep waits for d or the run's end; false if the run ended.
func (r *runner) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// waitDeliveries waits until the shards have received `expected` unique
// messages, or `drain` has passed since lastPublish, or the run ends. It
// returns whether everything arrived.
func (r *runner) waitDeliveries(expected int64, lastPublish time.Time) bool {
	end := lastPublish.Add(r.cfg.Drain)
	for {
		if r.progress().Unique >= expected {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		if !r.sleep(10 * time.Millisecond) {
			return false
		}
	}
}
