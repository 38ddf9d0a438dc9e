package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

// End-to-end tests of the tool against small in-process fake servers that
// speak the go-websocket and the Centrifugo protocols.

func TestMain(m *testing.M) {
	// -procs re-executes the (test) binary as a client process
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(runChild(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

type fakeConn struct {
	mu sync.Mutex
	c  *websocket.Conn
}

func (f *fakeConn) send(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.c.WriteMessage(websocket.TextMessage, b)
}

// fakeGows is a minimal go-websocket: register, ws, bind_to_group,
// send_to_group, send_to_client, send_to_system. It sends a 1001 event to a
// client that joins a group, and drops every dropEvery-th group delivery
// (0: none).
//
// With batch > 1 (set before the first request), send_to_group calls are
// held until batch of them are in flight; then the batch is delivered in
// descending seq order (the order a single sequence would call reordered)
// and every call of it is answered. seqs records the order delivered.
type fakeGows struct {
	t         *testing.T
	dropEvery int64
	mu        sync.Mutex
	clients   map[string]*fakeConn
	groups    map[string][]string
	n         atomic.Int64
	delivered atomic.Int64

	batch   int
	bmu     sync.Mutex
	pending [][]byte
	flushed chan struct{} // closed when the pending batch was delivered
	batches int
	seqs    []uint64
}

// joinBatch adds data to the pending batch. The call that fills it gets
// the whole batch back (to deliver, then close done); the others get the
// channel to wait on.
func (f *fakeGows) joinBatch(data []byte) (full [][]byte, done, wait chan struct{}) {
	f.bmu.Lock()
	defer f.bmu.Unlock()
	if f.flushed == nil {
		f.flushed = make(chan struct{})
	}
	f.pending = append(f.pending, data)
	if len(f.pending) < f.batch {
		return nil, nil, f.flushed
	}
	full, done = f.pending, f.flushed
	f.pending, f.flushed = nil, make(chan struct{})
	f.batches++
	slices.SortFunc(full, func(a, b []byte) int {
		pa, _ := parsePayload(a)
		pb, _ := parsePayload(b)
		return cmp.Compare(pb.Seq, pa.Seq)
	})
	for _, d := range full {
		p, _ := parsePayload(d)
		f.seqs = append(f.seqs, p.Seq)
	}
	return full, done, nil
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *fakeGows) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, data any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		b, _ := json.Marshal(map[string]any{"code": code, "msg": "success", "data": data})
		w.Write(b)
	}
	var body struct {
		ClientID  string          `json:"clientId"`
		GroupName string          `json:"groupName"`
		Data      json.RawMessage `json:"data"`
	}
	if r.Method == http.MethodPost {
		json.NewDecoder(r.Body).Decode(&body)
		if r.URL.Path != "/api/websocket/register" && r.Header.Get("systemId") != "bench" {
			w.WriteHeader(400)
			reply(10002, nil)
			return
		}
	}
	push := func(c *fakeConn, code int, data []byte) {
		c.send([]byte(fmt.Sprintf(`{"messageId":"m%d","sendUserId":"","code":%d,"msg":"","data":%s}`, f.n.Add(1), code, data)))
	}
	switch r.URL.Path {
	case "/api/websocket/register":
		w.WriteHeader(409)
		reply(10004, nil) // already registered: must be accepted
	case "/api/websocket/ws":
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		id := fmt.Sprintf("c%d", f.n.Add(1))
		fc := &fakeConn{c: c}
		f.mu.Lock()
		f.clients[id] = fc
		f.mu.Unlock()
		fc.send([]byte(`{"code":0,"msg":"success","data":{"clientId":"` + id + `"}}`))
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					c.Close()
					return
				}
			}
		}()
	case "/api/websocket/bind_to_group":
		f.mu.Lock()
		c := f.clients[body.ClientID]
		if c != nil {
			f.groups[body.GroupName] = append(f.groups[body.GroupName], body.ClientID)
		}
		f.mu.Unlock()
		if c == nil {
			w.WriteHeader(404)
			reply(10006, nil)
			return
		}
		push(c, 1001, []byte(`{"clientId":"`+body.ClientID+`","groupName":"g","userId":"","extend":""}`))
		reply(0, map[string]any{})
	case "/api/websocket/send_to_group", "/api/websocket/send_to_system":
		datas := [][]byte{body.Data}
		var done chan struct{}
		if f.batch > 1 && r.URL.Path == "/api/websocket/send_to_group" {
			var wait chan struct{}
			datas, done, wait = f.joinBatch(body.Data)
			if wait != nil {
				select {
				case <-wait:
				case <-r.Context().Done():
					return
				}
			}
		}
		f.mu.Lock()
		var targets []*fakeConn
		if r.URL.Path == "/api/websocket/send_to_group" {
			for _, id := range f.groups[body.GroupName] {
				targets = append(targets, f.clients[id])
			}
		} else {
			for _, c := range f.clients {
				targets = append(targets, c)
			}
		}
		f.mu.Unlock()
		for _, data := range datas {
			for _, c := range targets {
				if k := f.delivered.Add(1); f.dropEvery > 0 && k%f.dropEvery == 0 {
					continue
				}
				push(c, 0, data)
			}
		}
		if done != nil {
			close(done)
		}
		reply(0, map[string]any{"messageId": "x", "recipients": len(targets)})
	case "/api/websocket/send_to_client":
		f.mu.Lock()
		c := f.clients[body.ClientID]
		f.mu.Unlock()
		if c == nil {
			w.WriteHeader(404)
			reply(10006, nil)
			return
		}
		push(c, 0, body.Data)
		reply(0, map[string]any{"messageId": "x"})
	default:
		w.WriteHeader(404)
		reply(10001, nil)
	}
}

func newFakeGows(t *testing.T, dropEvery int64) (*fakeGows, string) {
	f := &fakeGows{t: t, dropEvery: dropEvery, clients: map[string]*fakeConn{}, groups: map[string][]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// runTool runs the tool in-process and returns its exit code and RESULT.
func runTool(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := realMain(append(args, "-quiet", "-timeout", "60s"), &stdout, &stderr)
	out := stdout.String()
	i := strings.LastIndex(out, "RESULT ")
	if i < 0 {
		t.Fatalf("no RESULT line (exit %d)\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out[i+7:])), &res); err != nil {
		t.Fatalf("RESULT not JSON: %v\n%s", err, out)
	}
	return code, res, out + stderr.String()
}

func num(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("RESULT has no number %q: %v", key, m)
	}
	return v
}

func TestFanoutAgainstFakeGows(t *testing.T) {
	_, url := newFakeGows(t, 0)
	code, res, out := runTool(t, "fanout", "-url", url, "-clients", "30", "-messages", "20", "-strict")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if num(t, res, "delivered") != 600 || num(t, res, "expected") != 600 || num(t, res, "lost") != 0 {
		t.Errorf("deliveries: %v", res)
	}
	if num(t, res, "events") != 30 {
		t.Errorf("membership events: want 30 (one per join), got %v", res["events"])
	}
	if num(t, res, "lat_p99_us") <= 0 || num(t, res, "deliveries_per_s") <= 0 {
		t.Errorf("no latency/throughput: %v", res)
	}
	if !strings.Contains(out, "GOWS_WEBSOCKET_EVENTSOFFSYSTEMS") {
		t.Error("no hint about membership events")
	}
}

// Four publishers on a server that delivers each round of their calls in
// descending seq order: every publisher's messages still arrive in order, so
// nothing is out of order per publisher, while one sequence over all of
// them would count reorderings. Two client processes: the lanes reach the
// remote shards too.
func TestFanoutConcurrentPublishers(t *testing.T) {
	f, url := newFakeGows(t, 0)
	f.batch = 4
	code, res, out := runTool(t, "fanout", "-url", url, "-clients", "10", "-messages", "40", "-publishers", "4",
		"-procs", "2", "-strict")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if num(t, res, "publishers") != 4 || !strings.Contains(out, "by 4 concurrent publishers") {
		t.Errorf("publishers not reported: %v", res)
	}
	if num(t, res, "delivered") != 400 || num(t, res, "lost") != 0 || num(t, res, "dup") != 0 || num(t, res, "ooo") != 0 {
		t.Errorf("deliveries: %v", res)
	}
	f.bmu.Lock()
	batches, seqs := f.batches, slices.Clone(f.seqs)
	f.bmu.Unlock()
	if batches != 10 || len(seqs) != 40 {
		t.Fatalf("server saw %d batches of 4 concurrent calls (%d messages), want 10 (40)", batches, len(seqs))
	}
	// the delivered order is a real test: one lane finds reorderings in it
	one, four := newSeqTracker(1), newSeqTracker(4)
	var c1, c4 seqCounts
	for _, s := range seqs {
		c1.add(one.observe(s))
		c4.add(four.observe(s))
	}
	if c1.OOO != 30 || c4.OOO != 0 || c4.Unique != 40 {
		t.Errorf("delivered order %v: one lane ooo %d (want 30), four lanes %+v", seqs, c1.OOO, c4)
	}
}

func TestFanoutCountsLossAndStrictFails(t *testing.T) {
	_, url := newFakeGows(t, 10) // every 10th delivery dropped
	code, res, out := runTool(t, "fanout", "-url", url, "-clients", "10", "-messages", "10", "-drain", "300ms", "-strict")
	if code != 3 {
		t.Errorf("exit %d, want 3 (-strict with losses)\n%s", code, out)
	}
	if num(t, res, "lost") != 10 || num(t, res, "delivered") != 90 {
		t.Errorf("lost %v delivered %v, want 10 and 90", res["lost"], res["delivered"])
	}
}

func TestUnicastAgainstFakeGowsTwoProcs(t *testing.T) {
	_, url := newFakeGows(t, 0)
	code, res, out := runTool(t, "unicast", "-url", url, "-clients", "40", "-messages", "400", "-workers", "4",
		"-procs", "2", "-src", "127.0.0.2-127.0.0.3", "-strict")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if num(t, res, "delivered") != 400 || num(t, res, "requests") != 400 || num(t, res, "ooo") != 0 || num(t, res, "dup") != 0 {
		t.Errorf("unicast: %v", res)
	}
	if num(t, res, "connected") != 40 {
		t.Errorf("connected %v", res["connected"])
	}
}

func TestClusterAndIdleAndChurnAgainstFakeGows(t *testing.T) {
	_, url := newFakeGows(t, 0)
	// the "cluster" is one fake listed twice (both see every client)
	code, res, out := runTool(t, "cluster", "-url", url+","+url, "-clients", "20", "-messages", "100", "-broadcasts", "2", "-strict")
	if code != 0 {
		t.Fatalf("cluster exit %d\n%s", code, out)
	}
	if num(t, res, "sys_delivered") != 40 || num(t, res, "uni_delivered") != 100 || num(t, res, "uni_ooo") != 0 {
		t.Errorf("cluster: %v", res)
	}
	code, res, out = runTool(t, "idle", "-url", url, "-clients", "50", "-duration", "200ms", "-settle", "0s", "-pid", fmt.Sprint(os.Getpid()))
	if code != 0 || num(t, res, "connected") != 50 {
		t.Fatalf("idle exit %d\n%s", code, out)
	}
	if _, ok := res["rss_per_conn_bytes"]; !ok {
		t.Errorf("idle with -pid has no rss_per_conn_bytes: %v", res)
	}
	code, res, out = runTool(t, "connect-churn", "-url", url, "-count", "60", "-concurrency", "4", "-duration", "10s")
	if code != 0 || num(t, res, "connects") != 60 || num(t, res, "errors") != 0 {
		t.Fatalf("churn exit %d: %v\n%s", code, res, out)
	}
}

// fakeCentrifugo speaks the Centrifugo v6 JSON protocol: connect,
// subscribe, server pings ({}), pushes, and POST /api/publish.
type fakeCentrifugo struct {
	mu    sync.Mutex
	subs  map[string][]*fakeConn
	pongs atomic.Int64
}

func (f *fakeCentrifugo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/connection/websocket":
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		fc := &fakeConn{c: c}
		go func() {
			defer c.Close()
			for {
				_, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				var cmd struct {
					ID        int `json:"id"`
					Subscribe *struct {
						Channel string `json:"channel"`
					} `json:"subscribe"`
					Connect *struct{} `json:"connect"`
				}
				json.Unmarshal(msg, &cmd)
				switch {
				case string(msg) == "{}":
					f.pongs.Add(1)
				case cmd.Connect != nil:
					// reply and a ping in one frame, as Centrifugo may batch
					fc.send([]byte(fmt.Sprintf(`{"id":%d,"connect":{"client":"abc","version":"6.0.0","ping":25,"pong":true}}`+"\n{}", cmd.ID)))
				case cmd.Subscribe != nil:
					if cmd.Subscribe.Channel == "forbidden" {
						fc.send([]byte(fmt.Sprintf(`{"id":%d,"error":{"code":103,"message":"permission denied"}}`, cmd.ID)))
						continue
					}
					f.mu.Lock()
					f.subs[cmd.Subscribe.Channel] = append(f.subs[cmd.Subscribe.Channel], fc)
					f.mu.Unlock()
					fc.send([]byte(fmt.Sprintf(`{"id":%d,"subscribe":{}}`, cmd.ID)))
				}
			}
		}()
	case "/api/publish":
		if r.Header.Get("X-API-Key") != "secret" {
			w.WriteHeader(401)
			return
		}
		var body struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		subs := f.subs[body.Channel]
		f.mu.Unlock()
		for _, c := range subs {
			// a push followed by a ping in the same frame
			c.send([]byte(fmt.Sprintf(`{"push":{"channel":%q,"pub":{"data":%s,"offset":1}}}`+"\n{}", body.Channel, body.Data)))
		}
		w.Write([]byte(`{"result":{}}`))
	default:
		w.WriteHeader(404)
	}
}

func TestCentrifugoTarget(t *testing.T) {
	f := &fakeCentrifugo{subs: map[string][]*fakeConn{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	code, res, out := runTool(t, "fanout", "-target", "centrifugo", "-api-key", "secret", "-url", srv.URL,
		"-clients", "20", "-messages", "15", "-strict")
	if code != 0 || num(t, res, "delivered") != 300 || num(t, res, "lost") != 0 {
		t.Fatalf("centrifugo fanout exit %d: %v\n%s", code, res, out)
	}
	code, res, out = runTool(t, "unicast", "-target", "centrifugo", "-api-key", "secret", "-url", srv.URL,
		"-clients", "20", "-messages", "200", "-workers", "3", "-strict")
	if code != 0 || num(t, res, "delivered") != 200 || num(t, res, "ooo") != 0 {
		t.Fatalf("centrifugo unicast exit %d: %v\n%s", code, res, out)
	}
	if f.pongs.Load() == 0 {
		t.Error("the tool never answered a server ping with {}")
	}
	// a wrong key: every publish fails, and the run says so
	code, res, _ = runTool(t, "fanout", "-target", "centrifugo", "-api-key", "wrong", "-url", srv.URL,
		"-clients", "2", "-messages", "3", "-drain", "100ms", "-strict")
	if code != 3 || num(t, res, "api_errors") != 3 {
		t.Errorf("wrong key: exit %d, %v", code, res)
	}
	// a refused subscription is a connection error
	code, res, _ = runTool(t, "fanout", "-target", "centrifugo", "-api-key", "secret", "-url", srv.URL, "-group", "forbidden",
		"-clients", "2", "-messages", "1")
	if code != 1 {
		t.Errorf("forbidden channel: exit %d, want 1 (nobody joined): %v", code, res)
	}
}
