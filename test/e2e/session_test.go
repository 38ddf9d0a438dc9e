package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// Users, sessions and acknowledgements, black-box: the real binary, clients
// that reach it through a TCP proxy in the test which can cut a connection
// without a close frame (a network drop) or let it go silent (the node's
// heartbeat timeout).

// sessionEnv is a node with sessions on, a one-second ping and a two-second
// heartbeat timeout, and a queue of 8 frames per client.
func sessionEnv(ttl string) map[string]string {
	return map[string]string{
		"GOWS_WEBSOCKET_SESSIONTTL":   ttl,
		"GOWS_WEBSOCKET_PINGINTERVAL": "1s",
		"GOWS_WEBSOCKET_PONGWAIT":     "2s",
		"GOWS_WEBSOCKET_QUEUELENGTH":  "8",
	}
}

// sessNode is one node under test with its API client and a system.
type sessNode struct {
	*nodeproc.Node
	api *wstest.API
	sys string
}

func startSessNode(t *testing.T, env map[string]string) *sessNode {
	t.Helper()
	n := nodeproc.Start(t, binPath, confPath, env)
	s := &sessNode{Node: n, api: &wstest.API{URL: n.URL, Client: n.HC}, sys: "sess"}
	s.api.OK(t, "register", "", map[string]string{"systemId": s.sys})
	return s
}

// metric is the value of one sample line of /metrics (0 when absent).
func (s *sessNode) metric(t testing.TB, sample string) float64 {
	t.Helper()
	code, body := s.api.Get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", code)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` ([0-9.e+]+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("metric %s: %v", sample, err)
	}
	return v
}

const suspendedSample = `gows_disconnects_total{reason="suspended"}`

// awaitSuspended waits until the node has suspended want sessions in all.
func (s *sessNode) awaitSuspended(t *testing.T, want float64) {
	t.Helper()
	wstest.Eventually(t, 10*time.Second, func() bool { return s.metric(t, suspendedSample) >= want },
		"the node did not suspend the session of the dropped connection")
}

func (s *sessNode) dial(t *testing.T, base string, o wstest.Options) *wstest.Client {
	t.Helper()
	c := wstest.MustDial(t, base, s.sys, o)
	if c.Welcome.ResumeToken == "" || c.Welcome.Resumed == nil {
		t.Fatalf("welcome %s: want resumeToken and resumed with sessions on", c.Welcome.Raw)
	}
	if len(c.Welcome.ResumeToken) > 256 || !regexp.MustCompile(`^[A-Za-z0-9_.~-]+$`).MatchString(c.Welcome.ResumeToken) {
		t.Errorf("resumeToken %q: want at most 256 URL-safe characters", c.Welcome.ResumeToken)
	}
	return c
}

// resume reconnects through base with c's token and lastSeq.
func (s *sessNode) resume(t *testing.T, base string, c *wstest.Client, last int64) *wstest.Client {
	t.Helper()
	return s.dial(t, base, wstest.Options{Query: wstest.ResumeQuery(c.Welcome.ResumeToken, last)})
}

func (s *sessNode) send(t *testing.T, clientID, text string) string {
	t.Helper()
	var r struct{ MessageID string }
	wstest.Decode(t, s.api.OK(t, "send_to_client", s.sys, map[string]any{"clientId": clientID, "data": text}), &r)
	return r.MessageID
}

func (s *sessNode) bind(t *testing.T, clientID, group string) {
	t.Helper()
	s.api.OK(t, "bind_to_group", s.sys, map[string]string{"clientId": clientID, "groupName": group})
}

func (s *sessNode) online(t *testing.T, clientID string) bool {
	t.Helper()
	var r struct{ Online bool }
	wstest.Decode(t, s.api.OK(t, "is_online", s.sys, map[string]string{"clientId": clientID}), &r)
	return r.Online
}

// expectMsg requires the next frame to be messageID with seq.
func expectMsg(t *testing.T, c *wstest.Client, messageID string, seq int64) wstest.Frame {
	t.Helper()
	f := c.ExpectSeq(t, 5*time.Second, seq)
	if f.MessageID != messageID {
		t.Errorf("client %s: frame %s: want messageId %s", c.ID, f.Raw, messageID)
	}
	return f
}

// expectNoEvent requires that c gets no frame at all within d (in
// particular no 1001/1002).
func expectNoEvent(t *testing.T, c *wstest.Client, d time.Duration) {
	t.Helper()
	if raw, err := c.Next(d); err == nil {
		t.Errorf("client %s: unexpected frame %s (no membership event may be sent for a suspended session)", c.ID, raw)
	}
}

// ---------------------------------------------------------------- proxy

// proxy forwards TCP connections to a node. Cut drops every connection
// without a close frame; Silence lets every connection go quiet in both
// directions (what the node sees when the network between stalls).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	pipes  []*pipe
	wg     sync.WaitGroup
}

// pipe is one proxied connection.
type pipe struct {
	client, server net.Conn
	mu             sync.Mutex
	silent         bool
	serverGone     chan struct{} // the node ended its side
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// base is the address clients dial.
func (p *proxy) base() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pp := &pipe{client: c, server: s, serverGone: make(chan struct{})}
		p.mu.Lock()
		p.pipes = append(p.pipes, pp)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			pp.copy(s, c)
			s.Close()
		}()
		go func() {
			defer p.wg.Done()
			pp.copy(c, s)
			close(pp.serverGone)
			c.Close()
		}()
	}
}

// copy forwards src to dst until src ends; while silent it reads and drops.
func (pp *pipe) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			pp.mu.Lock()
			silent := pp.silent
			pp.mu.Unlock()
			if !silent {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// last is the most recent connection.
func (p *proxy) last(t *testing.T) *pipe {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pipes) == 0 {
		t.Fatal("proxy: no connection yet")
	}
	return p.pipes[len(p.pipes)-1]
}

// Cut closes both sides of every connection: no close frame is sent.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pipes {
		pp.client.Close()
		pp.server.Close()
	}
	p.pipes = nil
}

// silence stops every connection's traffic in both directions.
func (p *proxy) silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pipes {
		pp.mu.Lock()
		pp.silent = true
		pp.mu.Unlock()
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// ---------------------------------------------------------------- resume

// TestSessionResumeAfterNetworkDrop: a connection cut without a close frame
// leaves the client online in its groups, frames sent in the gap are kept,
// and a resume replays every frame after lastSeq in order with its seq,
// then the live ones; the other member sees no leave or join.
func TestSessionResumeAfterNetworkDrop(t *testing.T) {
	t.Parallel()
	s := startSessNode(t, sessionEnv("30s"))
	px := newProxy(t, "127.0.0.1:"+strconv.Itoa(s.Port))
	a := s.dial(t, px.base(), wstest.Options{})
	b := s.dial(t, s.URL, wstest.Options{})
	if a.Welcome.IsResumed() {
		t.Fatalf("first connect: welcome %s says resumed", a.Welcome.Raw)
	}
	s.bind(t, a.ID, "g")
	f := a.ExpectSeq(t, 3*time.Second, 1)
	wstest.CheckEvent(t, a.ID, f, 1001, wstest.MemberEvent{ClientID: a.ID, GroupName: "g"})
	s.bind(t, b.ID, "g")
	f = a.ExpectSeq(t, 3*time.Second, 2)
	wstest.CheckEvent(t, a.ID, f, 1001, wstest.MemberEvent{ClientID: b.ID, GroupName: "g"})
	f = b.ExpectSeq(t, 3*time.Second, 1)
	wstest.CheckEvent(t, b.ID, f, 1001, wstest.MemberEvent{ClientID: b.ID, GroupName: "g"})
	m1 := s.send(t, a.ID, "m1")
	expectMsg(t, a, m1, 3)
	m2 := s.send(t, a.ID, "m2")
	expectMsg(t, a, m2, 4)

	before := s.metric(t, suspendedSample)
	px.cut()
	s.awaitSuspended(t, before+1)
	if _, err := a.CloseCode(5 * time.Second); err == nil {
		t.Fatal("the cut connection is still open")
	}
	if !s.online(t, a.ID) {
		t.Errorf("suspended client %s: is_online false, want true", a.ID)
	}
	var list struct {
		Count int
		List  []string
	}
	wstest.Decode(t, s.api.OK(t, "get_online_list", s.sys, map[string]string{"groupName": "g"}), &list)
	if list.Count != 2 {
		t.Errorf("get_online_list g during the gap: %+v, want both members", list)
	}
	m3 := s.send(t, a.ID, "m3")
	var gr struct {
		MessageID  string
		Recipients int
	}
	wstest.Decode(t, s.api.OK(t, "send_to_group", s.sys, map[string]any{"groupName": "g", "data": "m4"}), &gr)
	if gr.Recipients != 2 {
		t.Errorf("send_to_group during the gap: recipients %d, want 2 (the suspended client counts)", gr.Recipients)
	}
	m5 := s.send(t, a.ID, "m5")
	expectMsg(t, b, gr.MessageID, 2)
	expectNoEvent(t, b, 300*time.Millisecond)

	// The client got seq 4 but says 3 (it was in flight): 4 is replayed.
	a2 := s.resume(t, px.base(), a, 3)
	if !a2.Welcome.IsResumed() || a2.ID != a.ID {
		t.Fatalf("resume: welcome %s, want resumed true with clientId %s", a2.Welcome.Raw, a.ID)
	}
	if a2.Welcome.PreviousClientID != "" {
		t.Errorf("resume on the same node: welcome %s carries previousClientId", a2.Welcome.Raw)
	}
	expectMsg(t, a2, m2, 4)
	expectMsg(t, a2, m3, 5)
	expectMsg(t, a2, gr.MessageID, 6)
	expectMsg(t, a2, m5, 7)
	m6 := s.send(t, a.ID, "m6")
	expectMsg(t, a2, m6, 8)
	expectNoEvent(t, b, 300*time.Millisecond)
	if got := s.metric(t, "gows_session_resumes_total"); got != 1 {
		t.Errorf("gows_session_resumes_total %v, want 1", got)
	}

	// A second drop and resume continues the same sequence.
	px.cut()
	s.awaitSuspended(t, before+2)
	m7 := s.send(t, a.ID, "m7")
	a3 := s.resume(t, px.base(), a2, 8)
	if !a3.Welcome.IsResumed() || a3.ID != a.ID {
		t.Fatalf("second resume: welcome %s", a3.Welcome.Raw)
	}
	expectMsg(t, a3, m7, 9)
	a3.Close()
	f = b.NextFrame(t, 5*time.Second)
	wstest.CheckEvent(t, b.ID, f, 1002, wstest.MemberEvent{ClientID: a.ID, GroupName: "g"})
	wstest.CheckSeq(t, b.ID, f, 3, false)
}

// TestSessionResumeAfterHeartbeatTimeout: a connection that goes silent is
// dropped by the node after pongWait without ending the session; the
// client resumes with the frames of the gap.
func TestSessionResumeAfterHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	s := startSessNode(t, sessionEnv("30s"))
	px := newProxy(t, "127.0.0.1:"+strconv.Itoa(s.Port))
	a := s.dial(t, px.base(), wstest.Options{})
	b := s.dial(t, s.URL, wstest.Options{})
	s.bind(t, a.ID, "g")
	s.bind(t, b.ID, "g")
	a.ExpectSeq(t, 3*time.Second, 1)
	a.ExpectSeq(t, 3*time.Second, 2)
	b.ExpectSeq(t, 3*time.Second, 1)
	m1 := s.send(t, a.ID, "m1")
	expectMsg(t, a, m1, 3)

	pp := px.last(t)
	start := time.Now()
	px.silence()
	select {
	case <-pp.serverGone:
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not drop the silent connection within 10 s (pongWait 2s)")
	}
	t.Logf("the node dropped the silent connection after %v", time.Since(start).Round(time.Millisecond))
	s.awaitSuspended(t, 1)
	if !s.online(t, a.ID) {
		t.Errorf("client %s after the heartbeat timeout: is_online false, want true (suspended)", a.ID)
	}
	m2 := s.send(t, a.ID, "m2")
	m3 := s.send(t, a.ID, "m3")
	expectNoEvent(t, b, 300*time.Millisecond)
	a.Abort()

	a2 := s.resume(t, px.base(), a, 3)
	if !a2.Welcome.IsResumed() || a2.ID != a.ID {
		t.Fatalf("resume: welcome %s, want resumed true with clientId %s", a2.Welcome.Raw, a.ID)
	}
	expectMsg(t, a2, m2, 4)
	expectMsg(t, a2, m3, 5)
	m4 := s.send(t, a.ID, "m4")
	expectMsg(t, a2, m4, 6)
	expectNoEvent(t, b, 300*time.Millisecond)
}

// TestSessionTTLEnds: a session not resumed within sessionTTL ends with
// exactly one 1002 to its groups; a resume then connects as new.
func TestSessionTTLEnds(t *testing.T) {
	t.Parallel()
	s := startSessNode(t, sessionEnv("2s"))
	px := newProxy(t, "127.0.0.1:"+strconv.Itoa(s.Port))
	a := s.dial(t, px.base(), wstest.Options{})
	b := s.dial(t, s.URL, wstest.Options{})
	s.bind(t, a.ID, "g")
	s.bind(t, b.ID, "g")
	a.ExpectSeq(t, 3*time.Second, 1)
	a.ExpectSeq(t, 3*time.Second, 2)
	b.ExpectSeq(t, 3*time.Second, 1)

	px.cut()
	s.awaitSuspended(t, 1)
	suspendedAt := time.Now()
	s.send(t, a.ID, "kept")
	f := b.NextFrame(t, 8*time.Second)
	waited := time.Since(suspendedAt)
	wstest.CheckEvent(t, b.ID, f, 1002, wstest.MemberEvent{ClientID: a.ID, GroupName: "g"})
	wstest.CheckSeq(t, b.ID, f, 2, false)
	if waited < 1500*time.Millisecond {
		t.Errorf("1002 came %v after the suspension, before the TTL (2s)", waited)
	}
	expectNoEvent(t, b, time.Second)
	if s.online(t, a.ID) {
		t.Errorf("client %s after the TTL: is_online true", a.ID)
	}
	a2 := s.resume(t, px.base(), a, 2)
	checkNew(t, s, a2, a.ID, "expired session")
}

// checkNew requires c to be a new client: resumed false, a clientId other
// than old, and its sequence starting at 1.
func checkNew(t *testing.T, s *sessNode, c *wstest.Client, old, what string) {
	t.Helper()
	if c.Welcome.Resumed == nil || *c.Welcome.Resumed || c.ID == old || c.Welcome.PreviousClientID != "" {
		t.Errorf("%s: welcome %s, want resumed false and a new clientId (old %s)", what, c.Welcome.Raw, old)
	}
	m := s.send(t, c.ID, "fresh")
	expectMsg(t, c, m, 1)
}

// TestSessionResumeRefused: a resume of an ended (client close frame,
// close_client), overflowed or forged session connects as new.
func TestSessionResumeRefused(t *testing.T) {
	t.Parallel()
	s := startSessNode(t, sessionEnv("30s"))
	px := newProxy(t, "127.0.0.1:"+strconv.Itoa(s.Port))
	b := s.dial(t, s.URL, wstest.Options{})
	s.bind(t, b.ID, "g")
	b.ExpectSeq(t, 3*time.Second, 1)
	bseq := int64(1)
	expectLeave := func(id, what string) {
		t.Helper()
		f := b.NextFrame(t, 5*time.Second)
		bseq++
		wstest.CheckEvent(t, b.ID, f, 1002, wstest.MemberEvent{ClientID: id, GroupName: "g"})
		wstest.CheckSeq(t, b.ID, f, bseq, false)
		expectNoEvent(t, b, 300*time.Millisecond)
	}
	member := func() *wstest.Client {
		t.Helper()
		c := s.dial(t, px.base(), wstest.Options{})
		s.bind(t, c.ID, "g")
		c.ExpectSeq(t, 3*time.Second, 1)
		b.ExpectSeq(t, 3*time.Second, bseq+1)
		bseq++
		return c
	}

	t.Run("client close frame", func(t *testing.T) {
		a := member()
		a.Close()
		expectLeave(a.ID, "client close frame")
		checkNew(t, s, s.resume(t, px.base(), a, 1), a.ID, "resume after a client close frame")
	})
	t.Run("close_client", func(t *testing.T) {
		a := member()
		s.api.OK(t, "close_client", s.sys, map[string]string{"clientId": a.ID})
		a.ExpectClose(t, 1000, 5*time.Second)
		expectLeave(a.ID, "close_client")
		checkNew(t, s, s.resume(t, px.base(), a, 1), a.ID, "resume after close_client")
	})
	t.Run("overflow", func(t *testing.T) {
		// queueLength 8: a suspended session keeps 8 frames and ends on the 9th.
		keep, over := member(), member()
		keep.ExpectSeq(t, 3*time.Second, 2) // over's join
		n := s.metric(t, suspendedSample)
		px.cut()
		s.awaitSuspended(t, n+2)
		var kept []string
		for i := range 8 {
			if i < 7 { // the eighth frame kept for keep is over's leave
				kept = append(kept, s.send(t, keep.ID, "k"+strconv.Itoa(i)))
			}
			s.send(t, over.ID, "o"+strconv.Itoa(i))
		}
		expectNoEvent(t, b, 300*time.Millisecond)
		_ = s.api.Call(t, "send_to_client", s.sys, map[string]any{"clientId": over.ID, "data": "one too many"})
		expectLeave(over.ID, "overflow")
		if s.online(t, over.ID) {
			t.Errorf("overflowed session %s: still online", over.ID)
		}
		checkNew(t, s, s.resume(t, px.base(), over, 1), over.ID, "resume after an overflow")

		k2 := s.resume(t, px.base(), keep, 2)
		if !k2.Welcome.IsResumed() || k2.ID != keep.ID {
			t.Fatalf("resume with exactly queueLength frames kept: welcome %s", k2.Welcome.Raw)
		}
		for i, id := range kept {
			expectMsg(t, k2, id, int64(i+3))
		}
		f := k2.NextFrame(t, 5*time.Second)
		wstest.CheckEvent(t, k2.ID, f, 1002, wstest.MemberEvent{ClientID: over.ID, GroupName: "g"})
		wstest.CheckSeq(t, k2.ID, f, 10, false)
		k2.Close()
		expectLeave(keep.ID, "close after resume")
	})
	t.Run("lastSeq no longer kept", func(t *testing.T) {
		a := member()
		for i := range 10 {
			m := s.send(t, a.ID, "x")
			expectMsg(t, a, m, int64(i+2))
		}
		n := s.metric(t, suspendedSample)
		px.cut()
		s.awaitSuspended(t, n+1)
		// seq 1..3 are no longer kept (8 frames are): a resume from 1 cannot replay.
		checkNew(t, s, s.resume(t, px.base(), a, 1), a.ID, "resume from a seq no longer kept")
		// The old session ends at once (one 1002), so the person is not
		// listed twice until its TTL runs out.
		expectLeave(a.ID, "a resume that could not replay")
		if s.online(t, a.ID) {
			t.Errorf("session %s still online after a resume that could not replay", a.ID)
		}
	})
	t.Run("forged token", func(t *testing.T) {
		a := member()
		n := s.metric(t, suspendedSample)
		px.cut()
		s.awaitSuspended(t, n+1)
		tok := a.Welcome.ResumeToken
		forged := []string{
			flipLast(tok),
			b.ID + tok[strings.LastIndexByte(tok, '.'):], // another client's id with a's MAC
			"garbage", strings.Repeat("x", 300),
		}
		for _, f := range forged {
			c := s.dial(t, px.base(), wstest.Options{Query: wstest.ResumeQuery(f, 1)})
			checkNew(t, s, c, a.ID, "forged token "+f)
			if c.ID == b.ID {
				t.Errorf("forged token %q took over client %s", f, b.ID)
			}
			c.Close()
		}
		// The same token for another system.
		s.api.OK(t, "register", "", map[string]string{"systemId": "other"})
		c := wstest.MustDial(t, px.base(), "other", wstest.Options{Query: wstest.ResumeQuery(tok, 1)})
		if c.Welcome.IsResumed() || c.ID == a.ID {
			t.Errorf("a token of system %s resumed in system other: %s", s.sys, c.Welcome.Raw)
		}
		c.Close()
		// The genuine session is untouched by all that.
		expectNoEvent(t, b, 300*time.Millisecond)
		a2 := s.resume(t, px.base(), a, 1)
		if !a2.Welcome.IsResumed() || a2.ID != a.ID {
			t.Fatalf("genuine resume after forged ones: welcome %s", a2.Welcome.Raw)
		}
		a2.Close()
		expectLeave(a.ID, "close after resume")
	})
}

// ---------------------------------------------------------------- acks

// ackSend calls endpoint with an ack request in the background.
type ackResult struct {
	r    *wstest.Resp
	err  error
	took time.Duration
}

func ackSend(s *sessNode, endpoint string, body map[string]any) <-chan ackResult {
	ch := make(chan ackResult, 1)
	go func() {
		start := time.Now()
		r, err := s.api.Post(endpoint, s.sys, body)
		ch <- ackResult{r, err, time.Since(start)}
	}()
	return ch
}

func (a ackResult) acked(t *testing.T) (string, int, bool, time.Duration) {
	t.Helper()
	if a.err != nil {
		t.Fatalf("acked send: %v", a.err)
	}
	if a.r.Code != 0 {
		t.Fatalf("acked send: %s", a.r)
	}
	var d struct {
		MessageID  string
		Recipients int
		Acked      *bool
	}
	wstest.Decode(t, a.r.Data, &d)
	if d.Acked == nil {
		t.Fatalf("acked send: answer %s has no acked", a.r.Data)
	}
	return d.MessageID, d.Recipients, *d.Acked, a.took
}

func await(t *testing.T, ch <-chan ackResult, d time.Duration) ackResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("the acked send did not answer within %v", d)
	}
	return ackResult{}
}

// TestSessionAcks: the API answers acked true as soon as the client acks,
// acked false after ackTimeout without one, and an ack given after a resume
// counts.
func TestSessionAcks(t *testing.T) {
	t.Parallel()
	s := startSessNode(t, sessionEnv("30s"))
	px := newProxy(t, "127.0.0.1:"+strconv.Itoa(s.Port))
	a := s.dial(t, px.base(), wstest.Options{})

	// ack true
	ch := ackSend(s, "send_to_client", map[string]any{"clientId": a.ID, "data": "please ack", "ack": true, "ackTimeout": "10s"})
	f := a.NextFrame(t, 5*time.Second)
	wstest.CheckSeq(t, a.ID, f, 1, true)
	if err := a.Ack(f.MessageID); err != nil {
		t.Fatal(err)
	}
	id, n, acked, took := await(t, ch, 12*time.Second).acked(t)
	if !acked || id != f.MessageID || n != 1 || took > 5*time.Second {
		t.Errorf("acked send: messageId %s recipients %d acked %v after %v; want %s, 1, true, at once", id, n, acked, took, f.MessageID)
	}

	// ack timeout; an ack for an unknown messageId is ignored
	ch = ackSend(s, "send_to_client", map[string]any{"clientId": a.ID, "data": "ignored", "ack": true, "ackTimeout": "1s"})
	f = a.NextFrame(t, 5*time.Second)
	wstest.CheckSeq(t, a.ID, f, 2, true)
	if err := a.Ack("not-" + f.MessageID); err != nil {
		t.Fatal(err)
	}
	id, _, acked, took = await(t, ch, 5*time.Second).acked(t)
	if acked || id != f.MessageID || took < 900*time.Millisecond {
		t.Errorf("unacked send: acked %v after %v, want false after ackTimeout 1s", acked, took)
	}
	m := s.send(t, a.ID, "still connected")
	expectMsg(t, a, m, 3)

	// bad ackTimeout values
	for _, bad := range []any{"61s", "soon", 5, "-1s"} {
		r := s.api.Call(t, "send_to_client", s.sys, map[string]any{"clientId": a.ID, "data": "x", "ack": true, "ackTimeout": bad})
		if r.Code != 10001 || !strings.Contains(r.Msg, "ackTimeout") {
			t.Errorf("ackTimeout %v: %s, want 10001 naming ackTimeout", bad, r)
		}
	}

	// ack after a resume: a frame that was written but not acked is
	// replayed with its ack request, and the ack given then answers the
	// waiting call.
	ch = ackSend(s, "send_to_client", map[string]any{"clientId": a.ID, "data": "ack me later", "ack": true, "ackTimeout": "15s"})
	f = a.NextFrame(t, 5*time.Second)
	wstest.CheckSeq(t, a.ID, f, 4, true)
	px.cut()
	s.awaitSuspended(t, 1)
	a2 := s.resume(t, px.base(), a, 3)
	if !a2.Welcome.IsResumed() {
		t.Fatalf("resume: %s", a2.Welcome.Raw)
	}
	f2 := a2.NextFrame(t, 5*time.Second)
	wstest.CheckSeq(t, a2.ID, f2, 4, true)
	if f2.MessageID != f.MessageID {
		t.Errorf("replayed frame %s, want messageId %s", f2.Raw, f.MessageID)
	}
	if err := a2.Ack(f2.MessageID); err != nil {
		t.Fatal(err)
	}
	id, _, acked, _ = await(t, ch, 20*time.Second).acked(t)
	if !acked || id != f.MessageID {
		t.Errorf("ack after resume: messageId %s acked %v, want %s acked", id, acked, f.MessageID)
	}
}

// ---------------------------------------------------------------- users

// mintToken signs a connect token for systemID (userID "" leaves the claim out).
func mintToken(t *testing.T, secret, systemID, userID string) string {
	t.Helper()
	claims := jwt.MapClaims{"systemId": systemID, "exp": time.Now().Add(time.Hour).Unix()}
	if userID != "" {
		claims["userId"] = userID
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return tok
}

// TestUsers: two clients of one user get every send_to_user; the lists
// follow connects and disconnects; a connect token's userId cannot be
// rebound; acks work per user (sessions off: the frame ends with "ack":true).
func TestUsers(t *testing.T) {
	t.Parallel()
	const secret = "e2e-connect-secret-0123456789abcdef"
	n := nodeproc.Start(t, binPath, confPath, map[string]string{"GOWS_SECURITY_CONNECTSECRET": secret})
	s := &sessNode{Node: n, api: &wstest.API{URL: n.URL, Client: n.HC}, sys: "users"}
	s.api.OK(t, "register", "", map[string]string{"systemId": s.sys})
	dial := func(userID string) *wstest.Client {
		t.Helper()
		c := wstest.MustDial(t, n.URL, s.sys, wstest.Options{Query: map[string][]string{"token": {mintToken(t, secret, s.sys, userID)}}})
		if c.Welcome.Resumed != nil || c.Welcome.ResumeToken != "" {
			t.Errorf("sessions off: welcome %s carries session keys", c.Welcome.Raw)
		}
		return c
	}
	type list struct {
		Count int
		List  []string
	}
	users := func(uid string) list {
		t.Helper()
		var l list
		wstest.Decode(t, s.api.OK(t, "get_user_clients", s.sys, map[string]string{"userId": uid}), &l)
		if l.List == nil || l.Count != len(l.List) {
			t.Errorf("get_user_clients %s: %+v, want count = len(list), list never null", uid, l)
		}
		return l
	}
	onlineUser := func(uid string) bool {
		t.Helper()
		var r struct{ Online bool }
		wstest.Decode(t, s.api.OK(t, "is_user_online", s.sys, map[string]string{"userId": uid}), &r)
		return r.Online
	}

	laptop, phone, other := dial(""), dial(""), dial("")
	if onlineUser("alice") || users("alice").Count != 0 {
		t.Fatal("alice online before any bind")
	}
	for _, c := range []*wstest.Client{laptop, phone} {
		s.api.OK(t, "bind_to_user", s.sys, map[string]string{"clientId": c.ID, "userId": "alice"})
	}
	if l := users("alice"); l.Count != 2 || !sameSet(l.List, []string{laptop.ID, phone.ID}) {
		t.Errorf("get_user_clients alice: %+v, want %s and %s", l, laptop.ID, phone.ID)
	}
	if !onlineUser("alice") || onlineUser("nobody") {
		t.Error("is_user_online: want alice true, nobody false")
	}
	var sr struct {
		MessageID  string
		Recipients int
	}
	wstest.Decode(t, s.api.OK(t, "send_to_user", s.sys, map[string]any{"userId": "alice", "sendUserId": "srv", "data": map[string]int{"n": 1}}), &sr)
	if sr.Recipients != 2 {
		t.Errorf("send_to_user alice: recipients %d, want 2", sr.Recipients)
	}
	for _, c := range []*wstest.Client{laptop, phone} {
		f := c.ExpectPush(t, 5*time.Second)
		if f.MessageID != sr.MessageID || f.SendUserID != "srv" || string(f.Data) != `{"n":1}` {
			t.Errorf("client %s: frame %s, want messageId %s from srv with data {\"n\":1}", c.ID, f.Raw, sr.MessageID)
		}
	}
	other.ExpectNoFrame(t, 300*time.Millisecond)

	// send_to_user with an ack: the first ack answers (sessions off: no seq).
	ch := ackSend(s, "send_to_user", map[string]any{"userId": "alice", "data": "ack", "ack": true, "ackTimeout": "10s"})
	fl := laptop.NextFrame(t, 5*time.Second)
	fp := phone.NextFrame(t, 5*time.Second)
	for _, f := range []wstest.Frame{fl, fp} {
		if !strings.HasSuffix(string(f.Raw), `,"ack":true}`) || f.Seq != nil {
			t.Errorf("ack frame %s: want it to end with ,\"ack\":true} and no seq", f.Raw)
		}
	}
	if err := phone.Ack(fp.MessageID); err != nil {
		t.Fatal(err)
	}
	id, rc, acked, took := await(t, ch, 12*time.Second).acked(t)
	if !acked || rc != 2 || id != fp.MessageID || took > 5*time.Second {
		t.Errorf("send_to_user with ack: %s recipients %d acked %v after %v, want %s 2 true", id, rc, acked, took, fp.MessageID)
	}

	// A client that leaves is no longer the user's.
	phone.Close()
	wstest.Eventually(t, 5*time.Second, func() bool { return users("alice").Count == 1 }, "alice's phone still listed after it closed")
	laptop.Close()
	wstest.Eventually(t, 5*time.Second, func() bool { return !onlineUser("alice") }, "alice online after both clients closed")
	r := s.api.Call(t, "send_to_user", s.sys, map[string]any{"userId": "alice", "data": "x"})
	if r.Code != 0 || !strings.Contains(string(r.Data), `"recipients":0`) {
		t.Errorf("send_to_user to an offline user: %s, want success with recipients 0", r)
	}

	// The connect token's userId is the client's user and cannot be rebound.
	bob := dial("bob")
	if l := users("bob"); l.Count != 1 || l.List[0] != bob.ID {
		t.Errorf("get_user_clients bob: %+v, want [%s] (from the connect token)", l, bob.ID)
	}
	r = s.api.Call(t, "bind_to_user", s.sys, map[string]string{"clientId": bob.ID, "userId": "mallory"})
	if r.Code != 10001 || r.Status != http.StatusBadRequest {
		t.Errorf("bind_to_user over a token's userId: %s, want 10001 / 400", r)
	}
	if users("mallory").Count != 0 || users("bob").Count != 1 {
		t.Error("the refused bind changed the user lists")
	}
	// Invalid userIds and unknown clients.
	for _, body := range []map[string]string{
		{"clientId": other.ID, "userId": ""},
		{"clientId": other.ID, "userId": strings.Repeat("u", 257)},
		{"clientId": other.ID, "userId": "a\x01b"},
	} {
		if r := s.api.Call(t, "bind_to_user", s.sys, body); r.Code != 10001 {
			t.Errorf("bind_to_user %q: %s, want 10001", body["userId"], r)
		}
	}
	if r := s.api.Call(t, "bind_to_user", s.sys, map[string]string{"clientId": "nope", "userId": "x"}); r.Code != 10006 {
		t.Errorf("bind_to_user of an unknown client: %s, want 10006", r)
	}
	s.api.OK(t, "bind_to_user", s.sys, map[string]string{"clientId": other.ID, "userId": strings.Repeat("u", 256)})
}

// flipLast changes the last character of s.
func flipLast(s string) string {
	c := byte('A')
	if s[len(s)-1] == 'A' {
		c = 'B'
	}
	return s[:len(s)-1] + string(c)
}

// TestSessionResumeUnderStream: clients keep resuming, at random, while a
// publisher streams send_to_system and unicasts to them: in the end every
// client got every message exactly once, in the order sent, with its seq
// running 1, 2, 3 ... across all its connections.
func TestSessionResumeUnderStream(t *testing.T) {
	t.Parallel()
	s := startSessNode(t, map[string]string{"GOWS_WEBSOCKET_SESSIONTTL": "30s"})
	const clients, sends = 20, 900
	type state struct {
		c    *wstest.Client
		last int64
		got  []string
	}
	st := make([]*state, clients)
	for i := range st {
		st[i] = &state{c: s.dial(t, s.URL, wstest.Options{})}
	}
	// take reads what c has, checking the seq.
	take := func(x *state) {
		t.Helper()
		for {
			raw, err := x.c.Next(0)
			if err != nil {
				return
			}
			f, err := wstest.ParseFrame(raw)
			if err != nil {
				t.Fatal(err)
			}
			x.last++
			wstest.CheckSeq(t, x.c.ID, f, x.last, false)
			x.got = append(x.got, f.MessageID)
		}
	}
	// The publisher: system-wide sends, and unicasts to each client; ids[i]
	// is what client i must get, in order.
	type sent struct{ err error }
	done := make(chan sent, 1)
	ids := make([][]string, clients)
	ids0 := make([]string, clients)
	for i := range st {
		ids0[i] = st[i].c.ID
	}
	go func() {
		var out sent
		for k := range sends {
			if k%10 == 0 {
				time.Sleep(2 * time.Millisecond) // a stream, not one burst: resumes happen all along it
			}
			body := map[string]any{"data": k}
			ep := "send_to_system"
			to := -1
			if k%3 == 0 {
				to = k % clients
				ep, body["clientId"] = "send_to_client", ids0[to]
			}
			r, err := s.api.Post(ep, s.sys, body)
			if err != nil || r.Code != 0 {
				out.err = fmt.Errorf("%s: %v %v", ep, r, err)
				break
			}
			var d struct{ MessageID string }
			if err := json.Unmarshal(r.Data, &d); err != nil {
				out.err = err
				break
			}
			for i := range ids {
				if to < 0 || to == i {
					ids[i] = append(ids[i], d.MessageID)
				}
			}
		}
		done <- out
	}()
	// Cut and resume clients at random until the publisher is done.
	rnd := rand.New(rand.NewPCG(1, 2))
	resumes := 0
	var pub sent
	for running := true; running; {
		select {
		case pub = <-done:
			running = false
			continue
		default:
		}
		x := st[rnd.IntN(clients)]
		take(x)
		x.c.Abort()
		take(x) // frames that arrived before the socket closed
		r := s.resume(t, s.URL, x.c, x.last)
		if !r.Welcome.IsResumed() || r.ID != x.c.ID {
			t.Fatalf("resume %d of %s: welcome %s", resumes, x.c.ID, r.Welcome.Raw)
		}
		x.c = r
		resumes++
		time.Sleep(time.Duration(rnd.IntN(5)) * time.Millisecond) // spread the cuts over the stream
	}
	if pub.err != nil {
		t.Fatal(pub.err)
	}
	t.Logf("%d sends, %d resumes", sends, resumes)
	for i, x := range st {
		wstest.Eventually(t, 10*time.Second, func() bool { take(x); return len(x.got) >= len(ids[i]) },
			fmt.Sprintf("client %d got %d of %d messages", i, len(x.got), len(ids[i])))
		if strings.Join(x.got, ",") != strings.Join(ids[i], ",") {
			t.Errorf("client %d: got %d messages %v\nwant %d in this order %v", i, len(x.got), x.got, len(ids[i]), ids[i])
		}
	}
	// Every connection still works, and the node has nothing left hanging:
	// it exits at once on SIGTERM.
	for _, x := range st {
		m := s.send(t, x.c.ID, "last")
		expectMsg(t, x.c, m, x.last+1)
	}
	if code, d := s.Stop(); code != 0 || d > 5*time.Second {
		t.Errorf("node exit after SIGTERM: code %d after %v, want 0 within 5 s", code, d)
	}
}
