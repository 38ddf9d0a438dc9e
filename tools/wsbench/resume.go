package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The resume scenario: -clients connections with sessions on (the server
// runs with websocket.sessionTTL > 0) receive a steady stream of
// send_to_system messages at -rate while their connections are cut at
// random (-cut-rate per second over all clients): the client closes its TCP
// socket without a close frame and reconnects with resume=<token> and the
// last seq it received. Every client must get every message exactly once
// and in order (lost / duplicated / out-of-order 0 / 0 / 0), every resume
// must say "resumed": true, and the session seq must run without gaps.
// Resume latency is from the start of the reconnect to the resumed welcome.

// sessionFlags are the flags of the resume scenario and of -ack.
type sessionFlags struct {
	CutRate    float64
	Ack        bool
	AckTimeout time.Duration
}

func (s *sessionFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&s.CutRate, "cut-rate", 50, "resume: connections cut per second over all clients (the client closes the TCP socket without a close frame and resumes)")
	fs.BoolVar(&s.Ack, "ack", false, "unicast (gows): send_to_client asks for an acknowledgement, every client answers it, and the API call latency is the ack round trip; a send not acked counts as a failed call")
	fs.DurationVar(&s.AckTimeout, "ack-timeout", 5*time.Second, "with -ack: the ackTimeout of each send (at most 60s)")
}

func (s *sessionFlags) check(c *Config) error {
	switch {
	case s.CutRate < 0:
		return fmt.Errorf("-cut-rate %g: must not be negative", s.CutRate)
	case s.AckTimeout <= 0 || s.AckTimeout > 60*time.Second:
		return fmt.Errorf("-ack-timeout %s: want >0 and at most 60s", s.AckTimeout)
	case s.Ack && (c.Scenario != "unicast" || c.Target != "gows"):
		return errors.New("-ack applies to the unicast scenario on gows only")
	case c.Scenario == "resume" && c.Target != "gows":
		return errors.New("resume needs -target gows")
	case c.Scenario == "resume" && c.Procs > 1:
		return errors.New("resume runs its clients in one process (-procs 1)")
	case c.Scenario == "resume" && c.Rate <= 0:
		return errors.New("resume needs a -rate (send_to_system calls per second)")
	}
	return nil
}

// ackSuffix is what -ack adds to a send_to_client body.
func (s *sessionFlags) ackSuffix() string {
	if !s.Ack {
		return ""
	}
	return `,"ack":true,"ackTimeout":` + strconv.Quote(s.AckTimeout.String())
}

// errNotAcked is a send whose ack did not arrive within -ack-timeout.
var errNotAcked = &apiError{HTTP: 200, Code: 0, Msg: "not acknowledged within -ack-timeout"}

// checkAcked inspects the data of an acked send_to_client answer.
func checkAcked(data json.RawMessage) error {
	var r struct {
		Acked *bool `json:"acked"`
	}
	if json.Unmarshal(data, &r) != nil || r.Acked == nil {
		return &apiError{HTTP: 200, Msg: "answer without acked (does the server support acknowledgements?): " + trimForErr(string(data))}
	}
	if !*r.Acked {
		return errNotAcked
	}
	return nil
}

// ackOf returns the messageId of a frame that asks for an ack ("ack":true
// as its last key, or before "seq").
func ackOf(frame []byte) (string, bool) {
	i := bytes.LastIndex(frame, []byte(`,"ack":true`))
	if i < 0 {
		return "", false
	}
	rest := frame[i+len(`,"ack":true`):]
	if !bytes.Equal(rest, []byte("}")) && !bytes.HasPrefix(rest, []byte(`,"seq":`)) {
		return "", false
	}
	id, ok := stringField(frame, `"messageId":`)
	if !ok || len(id) == 0 {
		return "", false
	}
	return string(id), true
}

// ackFrame is the client's acknowledgement of messageID.
func ackFrame(messageID string) []byte {
	return []byte(`{"ack":` + strconv.Quote(messageID) + `}`)
}

// frameSeq returns N of a frame ending in `,"seq":N}`.
func frameSeq(frame []byte) (uint64, bool) {
	i := bytes.LastIndex(frame, []byte(`,"seq":`))
	if i < 0 || len(frame) == 0 || frame[len(frame)-1] != '}' {
		return 0, false
	}
	return parseUintBytes(frame[i+len(`,"seq":`) : len(frame)-1])
}

// welcomeInfo is the data of a welcome frame with sessions on.
type welcomeInfo struct {
	ClientID    string `json:"clientId"`
	ResumeToken string `json:"resumeToken"`
	Resumed     *bool  `json:"resumed"`
	Previous    string `json:"previousClientId"`
}

func parseWelcomeInfo(b []byte) (welcomeInfo, error) {
	var env struct {
		Code *int        `json:"code"`
		Msg  string      `json:"msg"`
		Data welcomeInfo `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Code == nil {
		return welcomeInfo{}, fmt.Errorf("bad welcome frame %q", trimForErr(string(b)))
	}
	if *env.Code != 0 {
		return welcomeInfo{}, fmt.Errorf("connect refused: code %d: %s", *env.Code, env.Msg)
	}
	if env.Data.ClientID == "" || env.Data.ResumeToken == "" || env.Data.Resumed == nil {
		return welcomeInfo{}, fmt.Errorf("welcome frame without clientId, resumeToken and resumed (start the server with sessions on, e.g. GOWS_WEBSOCKET_SESSIONTTL=30s): %q", trimForErr(string(b)))
	}
	return env.Data, nil
}

// resumeClient is one connection of the resume scenario, owned by its
// goroutine; the cutter only closes conn.
type resumeClient struct {
	idx     int
	token   string
	lastSeq uint64 // the session seq last received
	trk     seqTracker

	mu      sync.Mutex
	conn    *websocket.Conn // nil while reconnecting
	cutting bool
}

// cut closes the connection without a close frame; false if the client
// is between connections.
func (c *resumeClient) cut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.cutting {
		return false
	}
	c.cutting = true
	_ = c.conn.NetConn().Close()
	return true
}

func (c *resumeClient) setConn(conn *websocket.Conn) {
	c.mu.Lock()
	c.conn, c.cutting = conn, false
	c.mu.Unlock()
}

// resumeRun is the state of one resume run.
type resumeRun struct {
	r        *runner
	clients  []*resumeClient
	stopping atomic.Bool

	unique, dup, ooo, foreign, other, seqGaps atomic.Int64
	cuts, resumed, refused, reconnErrs        atomic.Int64
	drops                                     atomic.Int64 // ended by the server
	lat, resumeLat                            Hist
	// perSeq[s]: clients that got seq s (first arrival), to know when
	// every accepted call has arrived everywhere.
	perSeq   []atomic.Int64
	errMu    sync.Mutex
	firstErr string
}

func (rr *resumeRun) noteErr(err error) {
	rr.errMu.Lock()
	if rr.firstErr == "" {
		rr.firstErr = err.Error()
	}
	rr.errMu.Unlock()
}

func (rr *resumeRun) dial(ctx context.Context, c *resumeClient, resume bool) (*websocket.Conn, welcomeInfo, error) {
	base := rr.r.urls[c.idx%len(rr.r.urls)]
	u := wsURL("gows", base, rr.r.cfg.System, rr.r.cfg.ConnectToken)
	if resume {
		u += "&" + url.Values{"resume": {c.token}, "lastSeq": {strconv.FormatUint(c.lastSeq, 10)}}.Encode()
	}
	d := &websocket.Dialer{HandshakeTimeout: setupTimeout, ReadBufferSize: wsReadBuffer, WriteBufferSize: wsWriteBuffer, WriteBufferPool: writeBufPool}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, welcomeInfo{}, fmt.Errorf("upgrade refused: HTTP %d", resp.StatusCode)
		}
		return nil, welcomeInfo{}, err
	}
	conn.SetReadLimit(wsReadLimit)
	_ = conn.SetReadDeadline(time.Now().Add(setupTimeout))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, welcomeInfo{}, fmt.Errorf("reading the welcome frame: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	w, err := parseWelcomeInfo(msg)
	if err != nil {
		conn.Close()
		return nil, welcomeInfo{}, err
	}
	return conn, w, nil
}

// loop reads c's frames; when the connection ends (a cut) it resumes.
func (rr *resumeRun) loop(ctx context.Context, c *resumeClient, conn *websocket.Conn) {
	for {
		rr.read(c, conn)
		conn.Close()
		if rr.stopping.Load() || ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		wasCut := c.cutting
		c.conn = nil
		c.mu.Unlock()
		if !wasCut {
			rr.drops.Add(1)
		}
		var w welcomeInfo
		var err error
		for attempt := 0; ; attempt++ {
			t0 := time.Now()
			conn, w, err = rr.dial(ctx, c, true)
			if err == nil {
				rr.resumeLat.Record(int64(time.Since(t0)))
				break
			}
			if rr.stopping.Load() {
				return
			}
			rr.reconnErrs.Add(1)
			rr.noteErr(fmt.Errorf("resume: %w", err))
			if attempt >= 20 || !rr.r.sleep(100*time.Millisecond) {
				return
			}
		}
		if *w.Resumed {
			rr.resumed.Add(1)
		} else {
			// A new session: the gap is lost, and seq starts again at 1.
			rr.refused.Add(1)
			rr.noteErr(fmt.Errorf("resume of client %d with lastSeq %d refused (resumed false, new clientId %s)", c.idx, c.lastSeq, w.ClientID))
			c.lastSeq = 0
		}
		c.token = w.ResumeToken
		c.setConn(conn)
		if rr.stopping.Load() {
			conn.Close()
			return
		}
	}
}

// read handles frames until the connection ends.
func (rr *resumeRun) read(c *resumeClient, conn *websocket.Conn) {
	for {
		bp, err := readFrame(conn)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		f := *bp
		if s, ok := frameSeq(f); ok {
			if s != c.lastSeq+1 {
				rr.seqGaps.Add(1)
			}
			c.lastSeq = s
		}
		if isMembershipEvent(f) {
			putFrame(bp)
			continue
		}
		p, ok := parsePayload(f)
		switch {
		case !ok:
			if rr.other.Add(1) == 1 {
				rr.noteErr(fmt.Errorf("client %d: a frame without a benchmark payload: %s", c.idx, trimForErr(string(f))))
			}
		case !bytes.Equal(p.Run, []byte(rr.r.run)):
			rr.foreign.Add(1)
		default:
			rr.lat.Record(now - p.Sent)
			switch c.trk.observe(p.Seq) {
			case seqNew:
				rr.unique.Add(1)
				rr.arrived(p.Seq)
			case seqOOO:
				rr.unique.Add(1)
				rr.ooo.Add(1)
				rr.arrived(p.Seq)
			case seqDup:
				rr.dup.Add(1)
			}
		}
		putFrame(bp)
	}
}

// cutter cuts random connections at -cut-rate until ctx ends.
func (rr *resumeRun) cutter(ctx context.Context) {
	if rr.r.cfg.CutRate <= 0 {
		return
	}
	p := newPacer(rr.r.cfg.CutRate)
	for p.wait(ctx) {
		c := rr.clients[rand.IntN(len(rr.clients))]
		if c.cut() {
			rr.cuts.Add(1)
		}
	}
}

func (r *runner) resume() (*report, bool, error) {
	started := time.Now()
	cfg := r.cfg
	rep := newReport(fmt.Sprintf("wsbench resume: %d clients, send_to_system at %s/s for %s, %s cuts/s", cfg.Clients, fmtRate(cfg.Rate), cfg.Duration, fmtRate(cfg.CutRate)))
	r.header(rep)
	if err := r.register(); err != nil {
		return nil, false, err
	}
	rr := &resumeRun{r: r, clients: make([]*resumeClient, cfg.Clients),
		perSeq: make([]atomic.Int64, min(int(cfg.Rate*cfg.Duration.Seconds()*1.2)+64, 1<<22))}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()

	// connect
	var connected atomic.Int64
	r.prog.phase(func() string { return fmt.Sprintf("connecting  %d/%d", connected.Load(), cfg.Clients) })
	conns := make([]*websocket.Conn, cfg.Clients)
	var cerr atomic.Value
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(cfg.DialConc, cfg.Clients) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := &resumeClient{idx: i}
				conn, w, err := rr.dial(ctx, c, false)
				if err != nil {
					cerr.CompareAndSwap(nil, err)
					continue
				}
				c.token = w.ResumeToken
				c.setConn(conn)
				conns[i] = conn
				rr.clients[i] = c
				connected.Add(1)
			}
		}()
	}
	for i := range cfg.Clients {
		next <- i
	}
	close(next)
	wg.Wait()
	if err, _ := cerr.Load().(error); err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		r.prog.phase(nil)
		return nil, false, fmt.Errorf("connecting: %w", err)
	}
	var readers sync.WaitGroup
	for i, c := range rr.clients {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rr.loop(ctx, c, conns[i])
		}()
	}
	stop := func() {
		rr.stopping.Store(true)
		cancel()
		for _, c := range rr.clients {
			c.mu.Lock()
			if c.conn != nil {
				// A close frame ends the session on the server.
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				_ = c.conn.Close()
			}
			c.mu.Unlock()
		}
		readers.Wait()
	}

	// publish while cutting
	cutCtx, cutCancel := context.WithCancel(ctx)
	cutDone := make(chan struct{})
	go func() {
		defer close(cutDone)
		rr.cutter(cutCtx)
	}()
	before, ok := r.sample()
	ps := r.broadcast("resume", maxMessages, 0, func(ctx context.Context, data []byte) (int, error) {
		return r.api.SendToSystem(ctx, r.urls[0], data)
	})
	cutCancel()
	<-cutDone
	expected := ps.sent * int64(cfg.Clients)
	r.prog.phase(func() string {
		return fmt.Sprintf("draining  recv %d/%d  cuts %d  resumed %d", rr.arrivedBelow(ps.sent), expected, rr.cuts.Load(), rr.resumed.Load())
	})
	end := ps.end.Add(cfg.Drain)
	complete := false
	for range 1 << 20 {
		if rr.arrivedBelow(ps.sent) >= expected && rr.resumed.Load()+rr.refused.Load() >= rr.cuts.Load()+rr.drops.Load() {
			complete = true
			break
		}
		if time.Now().After(end) || !r.sleep(10*time.Millisecond) {
			break
		}
	}
	after, ok2 := r.sample()
	r.prog.phase(nil)
	stop()

	// Lost: seqs of accepted calls a client never got. A call cut off by
	// -duration may still have been delivered (its seq is the next one):
	// such deliveries are not counted.
	lost := int64(0)
	for _, c := range rr.clients {
		lost += int64(ps.sent) - c.trk.countBelow(uint64(ps.sent))
	}
	rep.row("clients", "%d connected with sessions", cfg.Clients)
	rep.row("messages", "%d send_to_system calls accepted in %s (%s/s), %d deliveries expected",
		ps.sent, fmtDur(ps.end.Sub(ps.start)), fmtRate(perSec(ps.sent, ps.end.Sub(ps.start))), expected)
	rep.row("recipients", "%d counted by the server in send_to_system answers (suspended sessions count)", ps.recipients)
	rep.set("recipients", ps.recipients)
	rep.row("cuts", "%d connections cut without a close frame, %d dropped by the server", rr.cuts.Load(), rr.drops.Load())
	rep.row("resumes", "%d resumed, %d refused (resumed false), %d reconnect errors", rr.resumed.Load(), rr.refused.Load(), rr.reconnErrs.Load())
	rep.row("lost / dup / ooo", "%d / %d / %d  (session seq gaps %d, other frames %d)", lost, rr.dup.Load(), rr.ooo.Load(), rr.seqGaps.Load(), rr.other.Load())
	rep.latency("resume latency", "resume_lat", rr.resumeLat.Snapshot(false))
	rep.latency("latency", "lat", rr.lat.Snapshot(false))
	r.publishRows(rep, "", ps, 0)
	r.serverRows(rep, before, after, ok && ok2, time.Since(ps.start), ps.sent*int64(cfg.Clients), "delivery", true)
	r.toolRow(rep, time.Since(started))
	for k, v := range map[string]int64{"requests": ps.sent, "expected": expected, "unique": rr.unique.Load(), "lost": lost,
		"dup": rr.dup.Load(), "ooo": rr.ooo.Load(), "seq_gaps": rr.seqGaps.Load(), "cuts": rr.cuts.Load(), "drops": rr.drops.Load(),
		"resumed": rr.resumed.Load(), "refused": rr.refused.Load(), "reconnect_errors": rr.reconnErrs.Load(), "foreign": rr.foreign.Load(),
		"delivered": rr.unique.Load(), "other": rr.other.Load(), "conn_errors": 0 /* a failed first connect ends the run */} {
		rep.set(k, v)
	}
	if !complete {
		rep.note("not every message arrived (or not every cut client came back) within -drain %s after the last call", cfg.Drain)
	}
	if rr.firstErr != "" {
		rep.note("first error: %s", rr.firstErr)
	}
	failed := !complete || lost > 0 || rr.dup.Load() > 0 || rr.ooo.Load() > 0 || rr.seqGaps.Load() > 0 ||
		rr.refused.Load() > 0 || rr.reconnErrs.Load() > 0 || ps.failed > 0
	return rep, failed, nil
}

// ack answers a frame that asks for an acknowledgement (shard readers).
func (s *localShard) ack(bc *benchConn, frame []byte) {
	id, ok := ackOf(frame)
	if !ok {
		return
	}
	if err := bc.c.WriteMessage(websocket.TextMessage, ackFrame(id)); err != nil && !s.stopping.Load() {
		s.noteErr("ack", err)
	}
}

// ackNote says what the API latency of a -ack run is.
func (r *runner) ackNote(rep *report) {
	rep.set("ack", r.cfg.Ack)
	if r.cfg.Ack {
		rep.note("-ack: every send waited for the client's acknowledgement (ackTimeout %s): the API call latency is the ack round trip; a send not acked counts as an API error", r.cfg.AckTimeout)
	}
}

// countBelow is how many distinct seqs below n the tracker has seen.
func (t *seqTracker) countBelow(n uint64) int64 {
	var k int64
	for s := uint64(0); s < n && s/64 < uint64(len(t.seen)); s++ {
		if t.seen[s/64]&(1<<(s%64)) != 0 {
			k++
		}
	}
	return k
}

func (rr *resumeRun) arrived(seq uint64) {
	if seq < uint64(len(rr.perSeq)) {
		rr.perSeq[seq].Add(1)
	}
}

// arrivedBelow is how many first arrivals there were of seqs below n.
func (rr *resumeRun) arrivedBelow(n int64) int64 {
	var k int64
	for i := range min(int(n), len(rr.perSeq)) {
		k += rr.perSeq[i].Load()
	}
	return k
}
