package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// A shard is a set of client connections run by one process: in-process
// (localShard) or in a child process of the tool (remoteShard, -procs > 1).
// The coordinator (the scenario code) publishes through the HTTP API and
// reads the shards' counters.
type Shard interface {
	// Ready waits until the shard has connected (and bound/subscribed) its
	// clients; in churn mode it returns at once.
	Ready(ctx context.Context) (ReadyInfo, error)
	// Progress is the latest counters (cheap, for the live line and for
	// completion checks).
	Progress() Progress
	// Snapshot returns the full result so far; reset clears the receive
	// counters and the latency histogram (between phases).
	Snapshot(reset bool) (ShardResult, error)
	// Stop closes every connection and returns the final result.
	Stop() (ShardResult, error)
	// PID is the process running the shard (for the tool's own CPU).
	PID() int
}

// shardConfig tells a shard what to do (sent to child processes as JSON).
type shardConfig struct {
	Mode             string        `json:"mode"` // "hold" or "churn"
	Target           string        `json:"target"`
	URLs             []string      `json:"urls"` // normalized base URLs
	System           string        `json:"system"`
	Token            string        `json:"token,omitempty"`
	ConnectToken     string        `json:"connectToken,omitempty"`
	Srcs             []string      `json:"srcs,omitempty"`
	Start            int           `json:"start"` // global index of the first client
	Count            int           `json:"count"`
	Group            string        `json:"group,omitempty"` // hold: bind to / subscribe to
	PerClientChannel bool          `json:"perClientChannel,omitempty"`
	Run              string        `json:"run"`
	DialConc         int           `json:"dialConc"`
	ConnectRate      float64       `json:"connectRate,omitempty"` // per shard
	ChurnCount       int64         `json:"churnCount,omitempty"`
	ChurnDuration    time.Duration `json:"churnDuration,omitempty"`
	ChurnConc        int           `json:"churnConc,omitempty"`
	Deadline         time.Time     `json:"deadline"`
	ProgressEvery    time.Duration `json:"progressEvery,omitempty"`
	// Lanes is the number of concurrent publishers: seq s comes from
	// publisher s % Lanes, and order is checked per publisher (0: one).
	Lanes int `json:"lanes,omitempty"`
	// Ack: answer every frame that asks for an acknowledgement.
	Ack bool `json:"ack,omitempty"`
}

// ReadyInfo is what a shard reports once connected.
type ReadyInfo struct {
	// IDs[i] is the id of client Start+i, "" if it failed to connect (or,
	// for a group, to bind).
	IDs         []string      `json:"ids"`
	Connected   int           `json:"connected"`
	Bound       int           `json:"bound"`
	ConnectTime time.Duration `json:"connectTime"`
}

// Progress is a shard's live counters.
type Progress struct {
	Connected   int64 `json:"connected"`
	ConnErrors  int64 `json:"connErrors"`
	Dropped     int64 `json:"dropped"` // connections closed by the server while held
	Bound       int64 `json:"bound"`
	BindErrors  int64 `json:"bindErrors"`
	Unique      int64 `json:"unique"`  // benchmark messages of this run, first arrival
	Dup         int64 `json:"dup"`     // arrived again
	OOO         int64 `json:"ooo"`     // first arrival, but after a later seq
	Foreign     int64 `json:"foreign"` // benchmark payloads of another run
	Events      int64 `json:"events"`  // 1001/1002 membership events
	Other       int64 `json:"other"`   // any other frame
	BadSeq      int64 `json:"badSeq"`
	LastRecv    int64 `json:"lastRecv"` // unix nanos of the latest benchmark message
	Churned     int64 `json:"churned"`
	ChurnErrors int64 `json:"churnErrors"`
	Done        bool  `json:"done"` // churn finished
}

func (p *Progress) add(o Progress) {
	p.Connected += o.Connected
	p.ConnErrors += o.ConnErrors
	p.Dropped += o.Dropped
	p.Bound += o.Bound
	p.BindErrors += o.BindErrors
	p.Unique += o.Unique
	p.Dup += o.Dup
	p.OOO += o.OOO
	p.Foreign += o.Foreign
	p.Events += o.Events
	p.Other += o.Other
	p.BadSeq += o.BadSeq
	p.LastRecv = max(p.LastRecv, o.LastRecv)
	p.Churned += o.Churned
	p.ChurnErrors += o.ChurnErrors
}

// ShardResult is a shard's full result.
type ShardResult struct {
	Progress
	Lat        HistData         `json:"lat"`     // publish-to-receive, ns
	ConnLat    HistData         `json:"connLat"` // connect (dial + first frame), ns
	Errors     map[string]int64 `json:"errors,omitempty"`
	CloseCodes map[string]int64 `json:"closeCodes,omitempty"`
}

func (r *ShardResult) merge(o ShardResult) {
	r.Progress.add(o.Progress)
	r.Lat.Merge(o.Lat)
	r.ConnLat.Merge(o.ConnLat)
	for k, v := range o.Errors {
		if r.Errors == nil {
			r.Errors = map[string]int64{}
		}
		r.Errors[k] += v
	}
	for k, v := range o.CloseCodes {
		if r.CloseCodes == nil {
			r.CloseCodes = map[string]int64{}
		}
		r.CloseCodes[k] += v
	}
}

// benchConn is one held connection.
type benchConn struct {
	c   *websocket.Conn
	idx int // global index
	trk seqTracker
}

type localShard struct {
	cfg     shardConfig
	ctx     context.Context
	cancel  context.CancelFunc
	api     *API
	dialers []*websocket.Dialer
	run     []byte

	conns    []*benchConn
	ids      []string
	readyCh  chan struct{}
	ready    ReadyInfo
	readyErr error
	stopping atomic.Bool
	readers  sync.WaitGroup
	stopOnce sync.Once
	final    ShardResult

	connected, connErrors, dropped, bound, bindErrors atomic.Int64
	unique, dup, ooo, foreign, events, other, badSeq  atomic.Int64
	lastRecv                                          atomic.Int64
	churned, churnErrors                              atomic.Int64
	churnDone                                         atomic.Bool

	lat     Hist
	connLat Hist

	errMu      sync.Mutex
	errs       map[string]int64
	closeCodes map[string]int64
}

const maxErrorKinds = 20

// noteErr tallies an error by its text (at most maxErrorKinds distinct).
func (s *localShard) noteErr(what string, err error) {
	msg := what + ": " + err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if _, ok := s.errs[msg]; !ok && len(s.errs) >= maxErrorKinds {
		msg = what + ": (other errors)"
	}
	s.errs[msg]++
}

func (s *localShard) noteClose(err error) {
	key := "no close frame"
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		key = strconv.Itoa(ce.Code)
	}
	s.errMu.Lock()
	s.closeCodes[key]++
	s.errMu.Unlock()
}

// startLocalShard starts connecting (hold) or churning in the background.
func startLocalShard(parent context.Context, cfg shardConfig) (*localShard, error) {
	dialers, err := newDialers(cfg.Srcs)
	if err != nil {
		return nil, err
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("shard: no server URL")
	}
	ctx, cancel := context.WithDeadline(parent, cfg.Deadline)
	s := &localShard{
		cfg: cfg, ctx: ctx, cancel: cancel,
		api:        newAPI(cfg.Target, cfg.System, cfg.Token, "", 16),
		dialers:    dialers,
		run:        []byte(cfg.Run),
		readyCh:    make(chan struct{}),
		errs:       map[string]int64{},
		closeCodes: map[string]int64{},
	}
	switch cfg.Mode {
	case "hold":
		go s.hold()
	case "churn":
		close(s.readyCh)
		go s.churn()
	default:
		cancel()
		return nil, fmt.Errorf("shard: unknown mode %q", cfg.Mode)
	}
	return s, nil
}

func (s *localShard) PID() int { return os.Getpid() }

// ended reports whether ctx is done or its deadline has passed: the network
// poller can fail an operation at the deadline before ctx.Err() turns
// non-nil, and such a failure is the run's end, not a server error.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// pacer spaces events at a fixed rate (0: no pacing).
type pacer struct {
	start    time.Time
	interval time.Duration
	n        atomic.Int64
}

func newPacer(rate float64) *pacer {
	p := &pacer{start: time.Now()}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait blocks until the next slot; false if ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	if p.interval <= 0 {
		return ctx.Err() == nil
	}
	k := p.n.Add(1) - 1
	d := time.Until(p.start.Add(time.Duration(k) * p.interval))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *localShard) urlFor(idx int) string { return s.cfg.URLs[idx%len(s.cfg.URLs)] }

func (s *localShard) dial(ctx context.Context, idx int, channel string) (*websocket.Conn, string, error) {
	d := s.dialers[idx%len(s.dialers)]
	u := wsURL(s.cfg.Target, s.urlFor(idx), s.cfg.System, s.cfg.ConnectToken)
	if s.cfg.Target == "centrifugo" {
		return dialCentrifugo(ctx, d, u, channel)
	}
	return dialGows(ctx, d, u)
}

func (s *localShard) hold() {
	defer close(s.readyCh)
	start := time.Now()
	s.conns = make([]*benchConn, s.cfg.Count)
	s.ids = make([]string, s.cfg.Count)
	p := newPacer(s.cfg.ConnectRate)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s.cfg.DialConc, s.cfg.Count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				idx := s.cfg.Start + i
				channel := ""
				if s.cfg.Target == "centrifugo" {
					channel = s.cfg.Group
					if s.cfg.PerClientChannel {
						channel = unicastChannel(idx)
					}
				}
				t0 := time.Now()
				c, id, err := s.dial(s.ctx, idx, channel)
				if err != nil {
					s.connErrors.Add(1)
					s.noteErr("connect", err)
					continue
				}
				s.connLat.Record(int64(time.Since(t0)))
				bc := &benchConn{c: c, idx: idx, trk: newSeqTracker(s.cfg.Lanes)}
				s.conns[i] = bc
				s.ids[i] = id
				s.connected.Add(1)
				s.readers.Add(1)
				go s.readLoop(bc)
			}
		}()
	}
	for i := range s.cfg.Count {
		if !p.wait(s.ctx) {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	s.ready.ConnectTime = time.Since(start)
	if err := s.ctx.Err(); err != nil {
		s.readyErr = fmt.Errorf("connecting: %w (connected %d of %d)", err, s.connected.Load(), s.cfg.Count)
		return
	}
	if s.cfg.Group != "" && s.cfg.Target == "gows" {
		s.bindAll()
	} else if s.cfg.Group != "" || s.cfg.PerClientChannel {
		s.bound.Store(s.connected.Load()) // Centrifugo subscribed while connecting
	}
	s.ready.IDs = s.ids
	s.ready.Connected = int(s.connected.Load())
	s.ready.Bound = int(s.bound.Load())
}

// bindAll binds every connected client to the group, on the node that holds
// it, with 16 concurrent calls. A client whose bind fails gets id "".
func (s *localShard) bindAll() {
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				idx := s.cfg.Start + i
				if err := s.api.Bind(s.ctx, s.urlFor(idx), s.ids[i], s.cfg.Group); err != nil {
					s.bindErrors.Add(1)
					s.noteErr("bind_to_group", err)
					s.ids[i] = ""
					continue
				}
				s.bound.Add(1)
			}
		}()
	}
	for i, id := range s.ids {
		if id == "" {
			continue
		}
		if s.ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
}

func (s *localShard) readLoop(bc *benchConn) {
	defer s.readers.Done()
	centrifugo := s.cfg.Target == "centrifugo"
	for {
		bp, err := readFrame(bc.c)
		if err != nil {
			if !s.stopping.Load() {
				s.dropped.Add(1)
				s.noteClose(err)
			}
			bc.c.Close()
			return
		}
		if s.stopping.Load() {
			putFrame(bp) // leave events etc. caused by our own close: not counted
			continue
		}
		now := time.Now().UnixNano()
		frame := *bp
		if centrifugo {
			for line := range bytes.SplitSeq(frame, []byte("\n")) {
				line = bytes.TrimSpace(line)
				if bytes.Equal(line, []byte("{}")) {
					// server ping: answer with a pong
					if err := bc.c.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil && !s.stopping.Load() {
						s.noteErr("pong", err)
					}
					continue
				}
				if len(line) > 0 {
					s.handle(bc, line, now)
				}
			}
		} else if isMembershipEvent(frame) {
			s.events.Add(1)
		} else {
			if s.cfg.Ack {
				s.ack(bc, frame)
			}
			s.handle(bc, frame, now)
		}
		putFrame(bp)
	}
}

func (s *localShard) handle(bc *benchConn, frame []byte, now int64) {
	p, ok := parsePayload(frame)
	if !ok {
		s.other.Add(1)
		return
	}
	if !bytes.Equal(p.Run, s.run) {
		s.foreign.Add(1)
		return
	}
	s.lat.Record(now - p.Sent)
	switch bc.trk.observe(p.Seq) {
	case seqNew:
		s.unique.Add(1)
	case seqOOO:
		s.unique.Add(1)
		s.ooo.Add(1)
	case seqDup:
		s.dup.Add(1)
	case seqBad:
		s.badSeq.Add(1)
	}
	for {
		cur := s.lastRecv.Load()
		if now <= cur || s.lastRecv.CompareAndSwap(cur, now) {
			break
		}
	}
}

func (s *localShard) churn() {
	defer s.churnDone.Store(true)
	d := s.cfg.ChurnDuration
	if d <= 0 {
		d = time.Until(s.cfg.Deadline)
	}
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	p := newPacer(s.cfg.ConnectRate)
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for range max(s.cfg.ChurnConc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !ended(ctx) {
				n := claimed.Add(1) - 1
				if s.cfg.ChurnCount > 0 && n >= s.cfg.ChurnCount {
					return
				}
				if !p.wait(ctx) {
					return
				}
				idx := s.cfg.Start + int(n)
				t0 := time.Now()
				c, _, err := s.dial(ctx, idx, "")
				if err != nil {
					if ended(ctx) {
						return // the run's end, not a server error
					}
					s.churnErrors.Add(1)
					s.noteErr("connect", err)
					continue
				}
				s.connLat.Record(int64(time.Since(t0)))
				s.churned.Add(1)
				closeGracefully(c, 2*time.Second)
			}
		}()
	}
	wg.Wait()
}

func (s *localShard) Ready(ctx context.Context) (ReadyInfo, error) {
	select {
	case <-s.readyCh:
		return s.ready, s.readyErr
	case <-ctx.Done():
		return ReadyInfo{}, ctx.Err()
	}
}

func (s *localShard) Progress() Progress {
	return Progress{
		Connected:   s.connected.Load(),
		ConnErrors:  s.connErrors.Load(),
		Dropped:     s.dropped.Load(),
		Bound:       s.bound.Load(),
		BindErrors:  s.bindErrors.Load(),
		Unique:      s.unique.Load(),
		Dup:         s.dup.Load(),
		OOO:         s.ooo.Load(),
		Foreign:     s.foreign.Load(),
		Events:      s.events.Load(),
		Other:       s.other.Load(),
		BadSeq:      s.badSeq.Load(),
		LastRecv:    s.lastRecv.Load(),
		Churned:     s.churned.Load(),
		ChurnErrors: s.churnErrors.Load(),
		Done:        s.cfg.Mode == "churn" && s.churnDone.Load(),
	}
}

func (s *localShard) Snapshot(reset bool) (ShardResult, error) {
	r := ShardResult{Progress: s.Progress()}
	if reset {
		// the receive side starts again from zero (connection counters stay)
		for _, c := range []*atomic.Int64{&s.unique, &s.dup, &s.ooo, &s.foreign, &s.events, &s.other, &s.badSeq, &s.lastRecv} {
			c.Store(0)
		}
	}
	r.Lat = s.lat.Snapshot(reset)
	r.ConnLat = s.connLat.Snapshot(false)
	s.errMu.Lock()
	r.Errors = cloneCounts(s.errs)
	r.CloseCodes = cloneCounts(s.closeCodes)
	s.errMu.Unlock()
	return r, nil
}

func cloneCounts(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// Stop closes every connection (close frames written in parallel, all
// within about 3 s), waits for the readers and returns the final result.
func (s *localShard) Stop() (ShardResult, error) {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		s.cancel()
		<-s.readyCh
		deadline := time.Now().Add(3 * time.Second)
		next := make(chan *benchConn)
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
				for bc := range next {
					_ = bc.c.WriteControl(websocket.CloseMessage, msg, deadline)
					bc.c.Close()
				}
			}()
		}
		for _, bc := range s.conns {
			if bc != nil {
				next <- bc
			}
		}
		close(next)
		wg.Wait()
		done := make(chan struct{})
		go func() { s.readers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		s.api.close()
		s.final, _ = s.Snapshot(false)
	})
	return s.final, nil
}
