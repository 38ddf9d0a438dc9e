package servers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/wsframe"
)

// Sessions (websocket.sessionTTL > 0) let a client survive a dropped
// connection: every data frame to it carries "seq": N (1, 2, 3 ... with no
// gaps) and the last queueLength of them are kept (as shared references to
// the broadcast frames, so the bytes are not copied per client). A
// connection that ends without the client's close frame leaves the session
// suspended for sessionTTL: the client stays online with its clientId,
// userId and groups, and frames sent to it are kept. A resume with the
// token from the welcome frame and the last seq it received attaches a new
// connection to the same client and replays every frame after that seq.

// out is one queued frame; seq > 0 marks a session's data frame, whose
// payload gets `,"seq":N` as its last key when it is written.
type out struct {
	f   frame
	seq uint64
}

// session is one client's sequence and kept frames; guarded by the mutex
// of the writer it belongs to.
type session struct {
	seq  uint64 // the last sequence number given
	kept []out  // ring of the last frames, oldest at head
	head int

	suspended bool
	since     int // frames kept while suspended
	ended     bool
	timer     *time.Timer
}

// isData reports whether f is a text frame (a push or an event), the kind
// that is numbered and kept.
func isData(f frame) bool { return len(f) > 0 && f[0]&0x0F == opText }

// keep numbers f and keeps it, dropping the oldest kept frame beyond max.
func (s *session) keep(f frame, max int) uint64 {
	s.seq++
	o := out{f: f, seq: s.seq}
	switch {
	case len(s.kept) < max:
		s.kept = append(s.kept, o)
	default:
		s.kept[s.head] = o
		s.head = (s.head + 1) % len(s.kept)
	}
	return s.seq
}

// keepSuspended keeps a frame for a suspended session; false when that
// would drop a frame the client has not been sent (the session must end).
func (s *session) keepSuspended(f frame, max int) bool {
	if s.since >= max {
		return false
	}
	s.since++
	s.keep(f, max)
	return true
}

// after returns the kept frames with a seq above last, in order; ok is
// false when some of them are no longer kept (or last is in the future).
func (s *session) after(last uint64) (frames []out, ok bool) {
	if last > s.seq {
		return nil, false
	}
	if last == s.seq {
		return nil, true
	}
	n := len(s.kept)
	oldest := s.kept[s.head%n].seq
	if oldest > last+1 {
		return nil, false
	}
	for i := range n {
		o := s.kept[(s.head+i)%n]
		if o.seq > last {
			frames = append(frames, o)
		}
	}
	return frames, true
}

// ---------------------------------------------------------------- tokens

// resumeTokens mints and checks resume tokens: the clientId and a MAC over
// it and the systemId, so a token is bound to both and cannot be forged.
type resumeTokens struct{ key []byte }

func (t resumeTokens) mac(systemID, clientID string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("gows-resume\x00"))
	m.Write([]byte(systemID))
	m.Write([]byte{0})
	m.Write([]byte(clientID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (t resumeTokens) mint(systemID, clientID string) string {
	return clientID + "." + t.mac(systemID, clientID)
}

// verify returns the clientId a token names, if its MAC is right for
// systemID.
func (t resumeTokens) verify(systemID, token string) (string, bool) {
	if len(token) > 256 {
		return "", false
	}
	id, mac, ok := strings.Cut(token, ".")
	if !ok || id == "" {
		return "", false
	}
	return id, hmac.Equal([]byte(mac), []byte(t.mac(systemID, id)))
}

// ---------------------------------------------------------------- writes

// expanded is a batch of queued frames as the byte slices one writev takes:
// a numbered frame becomes its own header, the shared payload without its
// closing brace, and `,"seq":N}`. The headers and suffixes live in a pooled
// scratch buffer, so numbering allocates nothing per frame.
type expanded struct {
	bufs    [][]byte
	scratch []byte
}

var expandPool = sync.Pool{New: func() any { return &expanded{} }}

// Room in the scratch buffer per numbered frame: a 10-byte header and
// `,"seq":` plus 20 digits and `}`.
const seqRoom = 10 + 8 + 20 + 1

func expand(batch []out) *expanded {
	v := expandPool.Get().(*expanded)
	numbered := 0
	for _, o := range batch {
		if o.seq > 0 {
			numbered++
		}
	}
	if need := numbered * seqRoom; cap(v.scratch) < need {
		v.scratch = make([]byte, 0, need)
	}
	sc := v.scratch[:0]
	for _, o := range batch {
		if o.seq == 0 {
			v.bufs = append(v.bufs, o.f)
			continue
		}
		body := o.f[headerSize(o.f) : len(o.f)-1] // the payload without its '}'
		start := len(sc)
		sc = append(sc, `,"seq":`...)
		sc = strconv.AppendUint(sc, o.seq, 10)
		sc = append(sc, '}')
		suffix := sc[start:len(sc):len(sc)]
		hstart := len(sc)
		sc = wsframe.AppendHeader(sc, 0x80|opText, len(body)+len(suffix))
		v.bufs = append(v.bufs, sc[hstart:len(sc):len(sc)], body, suffix)
	}
	v.scratch = sc
	return v
}

// unwritten returns, as raw queue entries, what is left after n bytes; the
// pieces in the scratch buffer are copied (it goes back to the pool).
func (v *expanded) unwritten(n int) []out {
	rest := unwritten(v.bufs, n)
	if len(rest) == 0 {
		return nil
	}
	outs := make([]out, len(rest))
	for i, b := range rest {
		if v.inScratch(b) {
			b = append([]byte(nil), b...)
		}
		outs[i] = out{f: b}
	}
	return outs
}

func (v *expanded) inScratch(b []byte) bool {
	if len(b) == 0 || cap(v.scratch) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(v.scratch)))
	return p >= lo && p < lo+uintptr(cap(v.scratch))
}

func (v *expanded) release() {
	clear(v.bufs)
	v.bufs = v.bufs[:0]
	if cap(v.scratch) > 64<<10 {
		v.scratch = nil
	}
	expandPool.Put(v)
}

// headerSize is the length of the header of a frame the server built.
func headerSize(f frame) int {
	switch f[1] & 0x7F {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// ---------------------------------------------------------------- life cycle

// suspend keeps the session of a client whose connection ended without its
// close frame: the client stays online and its frames are kept for
// sessionTTL. It reports false when the client has no session (or is being
// closed): the caller closes it then.
func (c *Client) suspend() bool {
	w := &c.w
	w.mu.Lock()
	s := w.sess
	if s == nil || s.ended || (w.closing && !w.detached && !w.keepOnClose) {
		w.mu.Unlock()
		return false
	}
	if w.detached {
		w.mu.Unlock()
		return true
	}
	w.detached, w.closing = true, true
	s.suspended, s.since = true, 0
	clear(w.queue)
	w.queue, w.spare, w.closeFrame = nil, nil, nil
	idle := !w.owned
	w.owned = true
	s.timer = time.AfterFunc(c.hub.cfg.SessionTTL, c.expire)
	w.mu.Unlock()
	_ = c.w.nc.Close()
	c.hub.metrics.Disconnects.WithLabelValues("suspended").Inc()
	if idle {
		c.done() // the writer's part: nobody owned the write side
	}
	return true
}

// shutdownKeepingSession closes a client's connection with 1001 (after its
// queued frames) while the node shuts down, and keeps its session, which
// is suspended once the connection is over. It reports false when the
// client has no session to keep.
func (c *Client) shutdownKeepingSession() bool {
	w := &c.w
	w.mu.Lock()
	if w.sess == nil || w.sess.ended || w.closing {
		w.mu.Unlock()
		return false
	}
	w.keepOnClose = true
	w.mu.Unlock()
	return w.startClose(closeFrame(define.DisconnectShutdown.Code, define.DisconnectShutdown.Text), false)
}

// release ends this writer's hold on its session (it moved to another
// connection or node): nothing is written here any more. It reports
// whether the write side was idle (the caller then ends the writer's part
// of a live connection). The caller holds w.mu.
func (w *writer) release() (idle bool) {
	w.sess = nil
	w.detached, w.closing = true, true
	clear(w.queue)
	w.queue = nil
	idle = !w.owned
	w.owned = true
	return idle
}

// keepingSession reports whether the node closed c for its shutdown and
// keeps its session.
func (c *Client) keepingSession() bool {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.keepOnClose
}

// suspendedSession reports whether c holds a suspended session.
func (c *Client) suspendedSession() bool {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.sess != nil && c.w.sess.suspended && !c.w.sess.ended
}

// endSuspended ends a suspended session once; the caller removes the
// client from the hub (1002 to its groups).
func (c *Client) endSuspended() bool {
	w := &c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sess
	if s == nil || !s.suspended || s.ended {
		return false
	}
	s.ended = true
	if s.timer != nil {
		s.timer.Stop()
	}
	return true
}

// expire ends a session that was not resumed within sessionTTL.
func (c *Client) expire() {
	if c.endSuspended() {
		c.hub.remove(c, define.DisconnectSessionExpired.Reason)
	}
}

// sessionOverflow ends a suspended session whose kept frames would exceed
// queueLength.
func (c *Client) sessionOverflow() {
	if c.endSuspended() {
		c.hub.slow.Add(1)
		c.hub.metrics.SlowConsumerCloses.Inc()
		go c.hub.remove(c, define.DisconnectSlowConsumer.Reason)
	}
}

// takeOver moves old's session to c (a new connection of the same client)
// if frames after lastSeq are all kept: c's queue gets them, in order, and
// old forwards later frames to c until the hub holds c instead of old.
// The old connection, if the server still thought it alive, is dropped.
func (c *Client) takeOver(old *Client, lastSeq uint64) bool {
	ow := &old.w
	ow.mu.Lock()
	s := ow.sess
	if s == nil || s.ended || ow.movedTo != nil || (ow.closing && !ow.detached) {
		ow.mu.Unlock()
		return false
	}
	replay, ok := s.after(lastSeq)
	if !ok {
		ow.mu.Unlock()
		return false
	}
	live := !ow.detached
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.suspended, s.since = false, 0
	c.w.mu.Lock()
	c.w.sess = s
	c.w.queue = append(c.w.queue, replay...)
	c.w.mu.Unlock()
	ow.movedTo = c
	idle := ow.release()
	ow.mu.Unlock()
	if live {
		// The server had not noticed the drop yet: end that connection
		// without a close frame and without leaving the groups.
		_ = old.w.nc.Close()
		if idle {
			old.done()
		}
	}
	return true
}

// ---------------------------------------------------------------- connect

// welcomeFrame is the first frame with sessions on:
// {"code":0,"msg":"success","data":{"clientId","resumeToken","resumed"}}.
func welcomeFrame(clientID, token string, resumed bool) frame {
	b := make([]byte, 0, 96+len(clientID)+len(token))
	b = append(b, `{"code":0,"msg":"success","data":{"clientId":`...)
	b = wsframe.AppendString(b, clientID)
	b = append(b, `,"resumeToken":`...)
	b = wsframe.AppendString(b, token)
	b = append(b, `,"resumed":`...)
	b = strconv.AppendBool(b, resumed)
	b = append(b, `}}`...)
	return newFrame(opText, b)
}

// welcomeFrameMoved is the welcome of a session resumed from another node:
// a new clientId and the one it replaces.
func welcomeFrameMoved(clientID, token, previous string) frame {
	b := make([]byte, 0, 128+len(clientID)+len(token)+len(previous))
	b = append(b, `{"code":0,"msg":"success","data":{"clientId":`...)
	b = wsframe.AppendString(b, clientID)
	b = append(b, `,"resumeToken":`...)
	b = wsframe.AppendString(b, token)
	b = append(b, `,"resumed":true,"previousClientId":`...)
	b = wsframe.AppendString(b, previous)
	b = append(b, `}}`...)
	return newFrame(opText, b)
}

// resume attaches a new connection to the suspended (or not yet noticed as
// dropped) session the token names, and replays the frames after lastSeq.
// It reports false when that cannot be done: the token is forged, the
// session ended or expired, or frames after lastSeq are no longer kept; the
// caller then connects the client as new.
func (n *Node) resume(nc net.Conn, systemID, userID, token, lastSeq string) bool {
	id, ok := n.resumeTokens.verify(systemID, token)
	if !ok {
		return false
	}
	var last uint64
	if lastSeq != "" {
		v, err := strconv.ParseUint(lastSeq, 10, 64)
		if err != nil {
			return false
		}
		last = v
	}
	old := n.hub.lookup(systemID, id)
	if old == nil {
		return n.resumeElsewhere(nc, systemID, userID, id, last)
	}
	if userID != "" && userID != old.UserID {
		return false
	}
	c := newClient(n.hub, id, systemID, old.UserID, nc)
	c.w.sess = nil // takeOver brings the session
	c.w.claim()
	if !c.takeOver(old, last) {
		// The client is back but its session cannot continue (frames it
		// missed are no longer kept): end the old one now, so its groups
		// do not list the person twice until the TTL runs out.
		old.close(define.DisconnectSessionExpired)
		return false
	}
	n.hub.replace(old, c)
	n.metrics.SessionResumes.Inc()
	c.w.pushFirst(welcomeFrame(id, token, true))
	c.w.flush()
	go c.readLoop()
	return true
}
