package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSessions is a minimal go-websocket with sessions: the welcome frame
// carries a resume token, every frame ends with "seq": N, and a resume
// replays every frame after lastSeq. send_to_system reaches every session
// (connected or not); send_to_client with "ack": true waits for the
// client's {"ack": id}. With refuseResume every resume connects as new;
// with loseOne the first frame sent to a suspended session is not kept.
type fakeSessions struct {
	refuseResume bool
	loseOne      atomic.Bool

	mu       sync.Mutex
	sessions map[string]*fakeSession
	n        atomic.Int64
	resumes  atomic.Int64
	acks     sync.Map // messageId -> chan struct{}
}

type fakeSession struct {
	mu   sync.Mutex
	conn *fakeConn
	kept [][]byte // every frame, kept[i] has seq i+1
}

// push numbers and keeps frame (a payload without its closing brace) and
// writes it when connected.
func (s *fakeSession) push(f *fakeSessions, frame string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := []byte(frame + `,"seq":` + strconv.Itoa(len(s.kept)+1) + `}`)
	s.kept = append(s.kept, b)
	if s.conn == nil && f.loseOne.CompareAndSwap(true, false) {
		s.kept[len(s.kept)-1] = nil
		return
	}
	if s.conn != nil {
		s.conn.send(b)
	}
}

func (f *fakeSessions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(data any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		b, _ := json.Marshal(map[string]any{"code": 0, "msg": "success", "data": data})
		w.Write(b)
	}
	var body struct {
		ClientID   string          `json:"clientId"`
		Data       json.RawMessage `json:"data"`
		Ack        bool            `json:"ack"`
		AckTimeout string          `json:"ackTimeout"`
	}
	if r.Method == http.MethodPost {
		json.NewDecoder(r.Body).Decode(&body)
	}
	switch r.URL.Path {
	case "/api/websocket/register":
		reply(map[string]string{"systemId": "bench"})
	case "/api/websocket/ws":
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		fc := &fakeConn{c: c}
		id, _, _ := strings.Cut(r.URL.Query().Get("resume"), ".")
		last, _ := strconv.Atoi(r.URL.Query().Get("lastSeq"))
		f.mu.Lock()
		s := f.sessions[id]
		f.mu.Unlock()
		resumed := s != nil && !f.refuseResume
		if resumed {
			s.mu.Lock()
			for _, b := range s.kept[min(last, len(s.kept)):] {
				if b == nil {
					resumed = false
				}
			}
			s.mu.Unlock()
		}
		if !resumed {
			id = fmt.Sprintf("c%d", f.n.Add(1))
			s = &fakeSession{}
			f.mu.Lock()
			f.sessions[id] = s
			f.mu.Unlock()
		} else {
			f.resumes.Add(1)
		}
		s.mu.Lock()
		fc.send([]byte(fmt.Sprintf(`{"code":0,"msg":"success","data":{"clientId":%q,"resumeToken":"%s.mac","resumed":%v}}`, id, id, resumed)))
		if resumed {
			for _, b := range s.kept[last:] {
				fc.send(b)
			}
		}
		s.conn = fc
		s.mu.Unlock()
		go func() {
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					s.mu.Lock()
					if s.conn == fc {
						s.conn = nil
					}
					s.mu.Unlock()
					c.Close()
					return
				}
				var a struct{ Ack string }
				if json.Unmarshal(msg, &a) == nil {
					if ch, ok := f.acks.Load(a.Ack); ok {
						close(ch.(chan struct{}))
						f.acks.Delete(a.Ack)
					}
				}
			}
		}()
	case "/api/websocket/send_to_system":
		id := fmt.Sprintf("m%d", f.n.Add(1))
		f.mu.Lock()
		all := make([]*fakeSession, 0, len(f.sessions))
		for _, s := range f.sessions {
			all = append(all, s)
		}
		f.mu.Unlock()
		for _, s := range all {
			s.push(f, fmt.Sprintf(`{"messageId":%q,"sendUserId":"","code":0,"msg":"","data":%s`, id, body.Data))
		}
		reply(map[string]any{"messageId": id, "recipients": len(all)})
	case "/api/websocket/send_to_client":
		id := fmt.Sprintf("m%d", f.n.Add(1))
		f.mu.Lock()
		s := f.sessions[body.ClientID]
		f.mu.Unlock()
		if s == nil {
			w.WriteHeader(404)
			w.Write([]byte(`{"code":10006,"msg":"client not online","data":null}`))
			return
		}
		frame := fmt.Sprintf(`{"messageId":%q,"sendUserId":"","code":0,"msg":"","data":%s`, id, body.Data)
		if !body.Ack {
			s.push(f, frame)
			reply(map[string]any{"messageId": id})
			return
		}
		ch := make(chan struct{})
		f.acks.Store(id, ch)
		s.push(f, frame+`,"ack":true`)
		d, _ := time.ParseDuration(body.AckTimeout)
		acked := false
		select {
		case <-ch:
			acked = true
		case <-time.After(d):
			f.acks.Delete(id)
		}
		reply(map[string]any{"messageId": id, "recipients": 1, "acked": acked})
	default:
		w.WriteHeader(404)
		w.Write([]byte(`{"code":10001,"msg":"no such endpoint","data":null}`))
	}
}

func newFakeSessions(t *testing.T) (*fakeSessions, string) {
	f := &fakeSessions{sessions: map[string]*fakeSession{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestResumeAgainstFakeSessions(t *testing.T) {
	f, url := newFakeSessions(t)
	code, res, out := runTool(t, "resume", "-url", url, "-clients", "20", "-rate", "100", "-duration", "1500ms",
		"-cut-rate", "40", "-strict")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	sent := num(t, res, "requests")
	if sent < 50 || num(t, res, "expected") != 20*sent || num(t, res, "unique") != 20*sent {
		t.Errorf("deliveries: %v", res)
	}
	for _, k := range []string{"lost", "dup", "ooo", "seq_gaps", "refused", "reconnect_errors"} {
		if num(t, res, k) != 0 {
			t.Errorf("%s %v, want 0", k, res[k])
		}
	}
	cuts := num(t, res, "cuts")
	if cuts < 10 || num(t, res, "resumed") != cuts || float64(f.resumes.Load()) != cuts {
		t.Errorf("cuts %v resumed %v (server saw %d resumes)", cuts, res["resumed"], f.resumes.Load())
	}
	if num(t, res, "resume_lat_p99_us") <= 0 || !strings.Contains(out, "resume latency") {
		t.Errorf("no resume latency: %v", res)
	}
}

// A server that loses a kept frame or refuses resumes is caught.
func TestResumeCountsLossAndRefusals(t *testing.T) {
	f, url := newFakeSessions(t)
	f.refuseResume = true
	code, res, out := runTool(t, "resume", "-url", url, "-clients", "5", "-rate", "50", "-duration", "1s",
		"-cut-rate", "10", "-drain", "500ms", "-strict")
	if code != 3 {
		t.Errorf("exit %d, want 3 (-strict with refused resumes)\n%s", code, out)
	}
	if num(t, res, "refused") == 0 || num(t, res, "refused") != num(t, res, "cuts") {
		t.Errorf("refused %v cuts %v", res["refused"], res["cuts"])
	}

	f, url = newFakeSessions(t)
	f.loseOne.Store(true)
	code, res, out = runTool(t, "resume", "-url", url, "-clients", "5", "-rate", "100", "-duration", "1s",
		"-cut-rate", "20", "-drain", "500ms", "-strict")
	if code != 3 || num(t, res, "refused") != 1 || num(t, res, "lost") == 0 {
		t.Errorf("one frame not kept: exit %d refused %v lost %v, want 3, 1, >0\n%s", code, res["refused"], res["lost"], out)
	}
}

func TestResumeNeedsSessions(t *testing.T) {
	_, url := newFakeGows(t, 0) // no resumeToken in the welcome
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"resume", "-url", url, "-clients", "2", "-rate", "10", "-duration", "200ms", "-quiet", "-timeout", "20s"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String()+stdout.String(), "GOWS_WEBSOCKET_SESSIONTTL") {
		t.Errorf("exit %d, want a failure naming GOWS_WEBSOCKET_SESSIONTTL\n%s%s", code, stdout.String(), stderr.String())
	}
}

func TestUnicastAckAgainstFakeSessions(t *testing.T) {
	_, url := newFakeSessions(t)
	code, res, out := runTool(t, "unicast", "-url", url, "-clients", "10", "-messages", "200", "-workers", "4",
		"-ack", "-ack-timeout", "2s", "-strict")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if num(t, res, "requests") != 200 || num(t, res, "delivered") != 200 || res["ack"] != true || num(t, res, "api_p99_us") <= 0 {
		t.Errorf("acked unicast: %v", res)
	}
	if !strings.Contains(out, "ack round trip") {
		t.Error("no note on what the API latency means with -ack")
	}
	// Two client processes: the remote shards answer acks too.
	code, res, out = runTool(t, "unicast", "-url", url, "-clients", "10", "-messages", "100", "-workers", "4",
		"-procs", "2", "-ack", "-strict")
	if code != 0 || num(t, res, "requests") != 100 {
		t.Errorf("acked unicast, 2 procs: exit %d %v\n%s", code, res, out)
	}
}

// An ack that cannot arrive within ackTimeout: the server answers acked
// false and each send is an API error "not acked".
func TestUnicastAckNotAcked(t *testing.T) {
	_, url := newFakeSessions(t)
	code, res, out := runTool(t, "unicast", "-url", url, "-clients", "2", "-messages", "4", "-workers", "1",
		"-ack", "-ack-timeout", "1ns", "-strict")
	if code != 3 || num(t, res, "requests") != 0 || !strings.Contains(out, "not acked") {
		t.Errorf("never acked: exit %d %v\n%s", code, res, out)
	}
}

func TestAckOfAndFrameSeq(t *testing.T) {
	for _, tc := range []struct {
		frame string
		id    string
		ok    bool
	}{
		{`{"messageId":"m1","sendUserId":"","code":0,"msg":"","data":{},"ack":true}`, "m1", true},
		{`{"messageId":"m2","sendUserId":"","code":0,"msg":"","data":{},"ack":true,"seq":7}`, "m2", true},
		{`{"messageId":"m3","sendUserId":"","code":0,"msg":"","data":{},"seq":7}`, "", false},
		{`{"messageId":"m4","sendUserId":"","code":0,"msg":"","data":{"x":",\"ack\":true"}}`, "", false},
		{`{"messageId":"","data":{},"ack":true}`, "", false},
	} {
		id, ok := ackOf([]byte(tc.frame))
		if id != tc.id || ok != tc.ok {
			t.Errorf("ackOf(%s) = %q %v, want %q %v", tc.frame, id, ok, tc.id, tc.ok)
		}
	}
	if got := string(ackFrame(`a"b`)); got != `{"ack":"a\"b"}` {
		t.Errorf("ackFrame: %s", got)
	}
	for _, tc := range []struct {
		frame string
		seq   uint64
		ok    bool
	}{
		{`{"messageId":"m","data":{},"seq":12}`, 12, true},
		{`{"messageId":"m","data":{},"ack":true,"seq":1}`, 1, true},
		{`{"messageId":"m","data":{}}`, 0, false},
		{`{"messageId":"m","data":{},"seq":x}`, 0, false},
	} {
		s, ok := frameSeq([]byte(tc.frame))
		if s != tc.seq || ok != tc.ok {
			t.Errorf("frameSeq(%s) = %d %v", tc.frame, s, ok)
		}
	}
}

func TestParseWelcomeInfo(t *testing.T) {
	w, err := parseWelcomeInfo([]byte(`{"code":0,"msg":"success","data":{"clientId":"c1","resumeToken":"c1.x","resumed":true,"previousClientId":"c0"}}`))
	if err != nil || w.ClientID != "c1" || w.ResumeToken != "c1.x" || !*w.Resumed || w.Previous != "c0" {
		t.Errorf("welcome: %+v %v", w, err)
	}
	for _, bad := range []string{
		`{"code":0,"msg":"success","data":{"clientId":"c1"}}`,
		`{"code":10003,"msg":"systemId not registered","data":null}`,
		`not json`,
	} {
		if _, err := parseWelcomeInfo([]byte(bad)); err == nil {
			t.Errorf("parseWelcomeInfo(%s): want an error", bad)
		}
	}
}

func TestSessionFlags(t *testing.T) {
	var out bytes.Buffer
	c, err := parseArgs([]string{"resume", "-rate", "100"}, &out)
	if err != nil || c.Clients != 500 || c.Duration != 20*time.Second || c.CutRate != 50 {
		t.Errorf("resume defaults: %+v %v", c, err)
	}
	c, err = parseArgs([]string{"unicast", "-ack", "-ack-timeout", "2s"}, &out)
	if err != nil || !c.Ack || c.ackSuffix() != `,"ack":true,"ackTimeout":"2s"` {
		t.Errorf("unicast -ack: %+v %v", c, err)
	}
	for _, args := range [][]string{
		{"resume"}, // no rate
		{"resume", "-rate", "10", "-procs", "2", "-clients", "4"},
		{"resume", "-rate", "10", "-cut-rate", "-1"},
		{"fanout", "-ack"},
		{"unicast", "-ack", "-ack-timeout", "61s"},
		{"unicast", "-ack", "-target", "centrifugo", "-api-key", "k"},
	} {
		if c, err := parseArgs(args, &out); err == nil {
			t.Errorf("parseArgs(%q) = %+v, want an error", args, c)
		}
	}
}
