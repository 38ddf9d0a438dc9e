package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// With -procs N > 1 the tool re-executes itself N times as "wsbench
// __shard": each child runs one localShard. The protocol is JSON lines:
//
//	parent -> child (stdin):  the shardConfig, then commands
//	                          "snap", "snapreset", "stop" (EOF = stop)
//	child -> parent (stdout): {"ev":"ready"|"progress"|"snap"|"result"|"error", ...}
//
// A child stops by itself at its config's deadline (plus a grace period),
// so an orphan never outlives the run.

const childArg = "__shard"

type shardEvent struct {
	Ev       string       `json:"ev"`
	Ready    *ReadyInfo   `json:"ready,omitempty"`
	Progress *Progress    `json:"progress,omitempty"`
	Result   *ShardResult `json:"result,omitempty"`
	Err      string       `json:"err,omitempty"`
}

// runChild is the child side. It returns the process exit code.
func runChild(stdin io.Reader, stdout io.Writer) int {
	in := bufio.NewReader(stdin)
	line, err := in.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		fmt.Fprintln(os.Stderr, "wsbench shard: no config on stdin:", err)
		return 1
	}
	var cfg shardConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench shard: bad config:", err)
		return 1
	}
	var outMu sync.Mutex
	out := bufio.NewWriterSize(stdout, 64<<10)
	emit := func(ev shardEvent) {
		b, _ := json.Marshal(ev)
		outMu.Lock()
		defer outMu.Unlock()
		out.Write(b)
		out.WriteByte('\n')
		out.Flush()
	}
	ctx, cancel := context.WithDeadline(context.Background(), cfg.Deadline.Add(30*time.Second))
	defer cancel()
	s, err := startLocalShard(ctx, cfg)
	if err != nil {
		emit(shardEvent{Ev: "error", Err: err.Error()})
		return 1
	}
	go func() {
		info, err := s.Ready(ctx)
		if err != nil {
			emit(shardEvent{Ev: "error", Err: err.Error()})
			return
		}
		emit(shardEvent{Ev: "ready", Ready: &info})
	}()
	every := cfg.ProgressEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p := s.Progress()
				emit(shardEvent{Ev: "progress", Progress: &p})
			case <-ctx.Done():
				return
			}
		}
	}()
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		for {
			l, err := in.ReadString('\n')
			if l = strings.TrimSpace(l); l != "" {
				cmds <- l
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case c, ok := <-cmds:
			if !ok || c == "stop" {
				r, _ := s.Stop()
				emit(shardEvent{Ev: "result", Result: &r})
				return 0
			}
			switch c {
			case "snap", "snapreset":
				r, _ := s.Snapshot(c == "snapreset")
				emit(shardEvent{Ev: "snap", Result: &r})
			default:
				fmt.Fprintf(os.Stderr, "wsbench shard: unknown command %q\n", c)
			}
		case <-ctx.Done():
			r, _ := s.Stop()
			emit(shardEvent{Ev: "result", Result: &r})
			return 0
		}
	}
}

// remoteShard is the parent's handle on a child process.
type remoteShard struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	inMu   sync.Mutex
	prog   atomic.Pointer[Progress]
	readyC chan shardEvent
	snapC  chan shardEvent
	resC   chan shardEvent
	exited chan struct{} // stdout closed (child gone or going)

	stopOnce sync.Once
	final    ShardResult
	finalErr error
}

func startRemoteShard(cfg shardConfig) (*remoteShard, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable for -procs: %w", err)
	}
	cmd := exec.Command(self, childArg)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a client process: %w", err)
	}
	r := &remoteShard{
		cmd: cmd, stdin: stdin,
		readyC: make(chan shardEvent, 1),
		snapC:  make(chan shardEvent, 1),
		resC:   make(chan shardEvent, 1),
		exited: make(chan struct{}),
	}
	r.prog.Store(&Progress{})
	go r.readEvents(stdout)
	b, _ := json.Marshal(cfg)
	if err := r.send(string(b)); err != nil {
		r.kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("configuring a client process: %w", err)
	}
	return r, nil
}

func (r *remoteShard) send(line string) error {
	r.inMu.Lock()
	defer r.inMu.Unlock()
	_, err := io.WriteString(r.stdin, line+"\n")
	return err
}

func (r *remoteShard) readEvents(stdout io.Reader) {
	defer close(r.exited)
	br := bufio.NewReaderSize(stdout, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var ev shardEvent
			if json.Unmarshal(line, &ev) == nil {
				switch ev.Ev {
				case "progress":
					if ev.Progress != nil {
						r.prog.Store(ev.Progress)
					}
				case "ready", "error":
					select {
					case r.readyC <- ev:
					default:
					}
				case "snap":
					r.snapC <- ev
				case "result":
					if ev.Result != nil {
						p := ev.Result.Progress
						r.prog.Store(&p)
					}
					r.resC <- ev
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *remoteShard) PID() int { return r.cmd.Process.Pid }

func (r *remoteShard) Ready(ctx context.Context) (ReadyInfo, error) {
	select {
	case ev := <-r.readyC:
		if ev.Ev == "error" || ev.Ready == nil {
			return ReadyInfo{}, fmt.Errorf("client process %d: %s", r.PID(), ev.Err)
		}
		return *ev.Ready, nil
	case <-r.exited:
		return ReadyInfo{}, fmt.Errorf("client process %d exited before it was ready", r.PID())
	case <-ctx.Done():
		return ReadyInfo{}, ctx.Err()
	}
}

func (r *remoteShard) Progress() Progress { return *r.prog.Load() }

func (r *remoteShard) Snapshot(reset bool) (ShardResult, error) {
	cmd := "snap"
	if reset {
		cmd = "snapreset"
	}
	if err := r.send(cmd); err != nil {
		return ShardResult{}, err
	}
	select {
	case ev := <-r.snapC:
		return *ev.Result, nil
	case <-r.exited:
		return ShardResult{}, fmt.Errorf("client process %d exited", r.PID())
	case <-time.After(30 * time.Second):
		return ShardResult{}, fmt.Errorf("client process %d: no snapshot within 30s", r.PID())
	}
}

func (r *remoteShard) Stop() (ShardResult, error) {
	r.stopOnce.Do(func() {
		_ = r.send("stop")
		r.inMu.Lock()
		r.stdin.Close()
		r.inMu.Unlock()
		select {
		case ev := <-r.resC:
			r.final = *ev.Result
		case <-r.exited:
			r.finalErr = fmt.Errorf("client process %d exited without a result", r.PID())
		case <-time.After(30 * time.Second):
			r.finalErr = fmt.Errorf("client process %d: no result within 30s", r.PID())
		}
		waited := make(chan struct{})
		go func() { r.cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			r.kill()
			<-waited
		}
	})
	return r.final, r.finalErr
}

// kill ends this child (by its own PID; it is our child process).
func (r *remoteShard) kill() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
	}
}
