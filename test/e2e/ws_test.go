package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// SPEC 3/4: connect on both paths; the first frame is the success envelope
// carrying a URL-safe clientId of at most 64 characters (at least 96 random
// bits: 16 characters); ids are unique over many connects.
func TestConnectClientIDs(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "ids")

	// The first frame, byte for byte.
	conn, _, err := wsDialer.Dial(n.wsURL("ids"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, first, err := conn.ReadMessage()
	conn.Close()
	if err != nil || typ != websocket.TextMessage {
		t.Fatalf("first frame: type %d, %v", typ, err)
	}
	var hello struct {
		Data struct {
			ClientID string `json:"clientId"`
		} `json:"data"`
	}
	_ = json.Unmarshal(first, &hello)
	if want := `{"code":0,"msg":"success","data":{"clientId":` + jsonStr(hello.Data.ClientID) + `}}`; string(first) != want {
		t.Errorf("first frame %s, want %s", first, want)
	}

	const total, workers = 300, 10
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		errs []string
		wg   sync.WaitGroup
	)
	jobs := make(chan int, total)
	for i := 0; i < total; i++ {
		jobs <- i
	}
	close(jobs)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				path := mainWSPath
				if i%2 == 1 {
					path = legacyWSPath
				}
				c, err := n.dialOpts("ids", dialOpt{path: path, noReader: true})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("connect %d (%s): %v", i, path, err))
				} else {
					seen[c.id]++
					if len(c.id) < 16 {
						errs = append(errs, fmt.Sprintf("clientId %q: shorter than 16 characters (96 random bits)", c.id))
					}
				}
				mu.Unlock()
				if c != nil {
					c.close()
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs[:min(len(errs), 10)] {
		t.Error(e)
	}
	if len(seen) != total-len(errs) {
		dups := 0
		for _, k := range seen {
			if k > 1 {
				dups++
			}
		}
		t.Errorf("%d connects gave %d distinct clientIds (%d duplicated)", total-len(errs), len(seen), dups)
	}
	// Unguessable: beyond what all ids of this node share, at least 16
	// characters (96 bits) vary.
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	if len(ids) > 1 {
		lcp := ids[0]
		for _, id := range ids[1:] {
			k := 0
			for k < len(lcp) && k < len(id) && lcp[k] == id[k] {
				k++
			}
			lcp = lcp[:k]
		}
		for _, id := range ids[:1] {
			if len(id)-len(lcp) < 16 {
				t.Errorf("clientIds share the prefix %q; only %d characters of %q vary (want at least 16: 96 bits)", lcp, len(id)-len(lcp), id)
			}
		}
	}
	n.waitOnlineSet(t, "ids", "", nil, 5*time.Second)
}

// SPEC 6 (default allowedOrigins = *): a browser from any origin connects,
// including the opaque origin "null" (file:// pages, sandboxed frames).
func TestDefaultOriginsAny(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "any")
	for _, origin := range []string{"https://evil.example.com", "http://localhost:3000", "null"} {
		c, err := n.dialOpts("any", dialOpt{header: map[string]string{"Origin": origin}})
		if err != nil {
			t.Errorf("Origin %s with the default allowedOrigins: %v", origin, err)
			continue
		}
		c.close()
	}
}

// SPEC 3: a failed connect gets the upgrade, one error envelope frame, then a
// 4xxx close: 4001 missing systemId, 4004 unknown system. Both paths.
func TestWSHandshakeFailures(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "known")
	base := "ws://127.0.0.1:" + strconv.Itoa(n.port)
	for _, path := range []string{mainWSPath, legacyWSPath} {
		for _, tc := range []struct {
			query     string
			code      int // envelope code
			closeCode int
		}{
			{"", 10002, 4001},
			{"?systemId=", 10002, 4001},
			{"?other=known", 10002, 4001},
			{"?systemId=unknown", 10003, 4004},
			{"?systemId=KNOWN", 10003, 4004},
		} {
			url := base + path + tc.query
			conn, resp, err := wsDialer.Dial(url, nil)
			if err != nil {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Errorf("%s: the upgrade must be answered, got %v (HTTP %d)", url, err, status)
				continue
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			typ, msg, err := conn.ReadMessage()
			if err != nil || typ != websocket.TextMessage {
				t.Errorf("%s: want one text frame with the error, got type %d, %v", url, typ, err)
				conn.Close()
				continue
			}
			var env struct {
				Code *int    `json:"code"`
				Msg  *string `json:"msg"`
			}
			if err := json.Unmarshal(msg, &env); err != nil || env.Code == nil || env.Msg == nil {
				t.Errorf("%s: frame %s is not an envelope", url, msg)
			} else if *env.Code != tc.code || *env.Msg == "" {
				t.Errorf("%s: frame %s, want code %d with a msg", url, msg, tc.code)
			}
			_, _, err = conn.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.closeCode {
				t.Errorf("%s: after the error frame want close %d, got %v", url, tc.closeCode, err)
			}
			conn.Close()
		}
	}

	// Hostile queries: either a JSON HTTP error (< 500) or frame + 4xxx close.
	for _, q := range []string{
		"?systemId=" + strings.Repeat("k", 5000),
		"?systemId=%00", "?systemId=%FF%FE", "?systemId=a%0Ab",
		"?systemId=%", "?systemId=known%00",
	} {
		url := base + mainWSPath + q
		conn, resp, err := wsDialer.Dial(url, nil)
		if err != nil {
			if resp == nil {
				t.Errorf("%.80s: %v", url, err)
				continue
			}
			r := &apiResp{Method: "GET", Path: url, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
			buf := make([]byte, 4096)
			k, _ := resp.Body.Read(buf)
			r.Body = buf[:k]
			resp.Body.Close()
			if err := checkEnvelope(r); err != nil {
				t.Errorf("%.80s: refused upgrade: %v", url, err)
			}
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, msg, err := conn.ReadMessage()
		if err == nil && typ == websocket.TextMessage {
			var env struct {
				Code int `json:"code"`
			}
			_ = json.Unmarshal(msg, &env)
			if env.Code == 0 {
				// Accepted as a (strange but registered?) system: not expected.
				t.Errorf("%.80s: connected (%s)", url, msg)
				conn.Close()
				continue
			}
			_, _, err = conn.ReadMessage()
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code < 4000 || ce.Code > 4999 {
			t.Errorf("%.80s: want an error frame then a 4xxx close, got %v", url, err)
		}
		conn.Close()
	}
}

// SPEC 3: the client is addressable when its clientId frame is sent: a push
// sent right after it arrives (send_to_client and send_to_system).
func TestPushRightAfterConnect(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "now")
	for i := 0; i < 30; i++ {
		c, err := n.dialOpts("now", dialOpt{path: []string{mainWSPath, legacyWSPath}[i%2]})
		if err != nil {
			t.Fatal(err)
		}
		var mid string
		if i%3 == 2 {
			var res msgResult
			mustUnmarshal(t, n.ok(t, "send_to_system", "now", `{"data":`+strconv.Itoa(i)+`}`), &res)
			if res.Recipients == nil || *res.Recipients != 1 {
				t.Errorf("send_to_system right after connect: recipients %v, want 1", res.Recipients)
			}
			mid = res.MessageID
		} else {
			mid = n.sendToClient(t, "now", c.id, strconv.Itoa(i))
		}
		f := c.expectPush(t, 3*time.Second)
		if f.MessageID != mid || string(f.Data) != strconv.Itoa(i) {
			t.Errorf("connect %d: got %s, want messageId %s data %d", i, f.Raw, mid, i)
		}
		c.close()
		n.waitOffline(t, "now", c.id, 3*time.Second)
	}
}

// SPEC 2/3: data is passed through as is (raw bytes of the data value), an
// absent data is null, and the frame is exactly
// {"messageId","sendUserId","code","msg","data"} in this order, with the
// messageId the API returned.
func TestDataPassthrough(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false"})
	n.register(t, "dp")
	c := n.dial(t, "dp")
	values := []string{
		`"hello"`, `""`, `0`, `-12.5e-3`, `1.50`, `12345678901234567890`, `1E+2`, `true`, `false`, `null`,
		`{}`, `[]`, `{"b":1,"a":[1,2,{"c":null}]}`, `["x",1,null,true,{"k":"v"}]`,
		`"h\u00e9llo \"quoted\" \\ \/ \n"`, `"<script>&amp;"`, `"中文 ünïcödé"`, `{"nested":{"deep":{"deeper":[[[]]]}}}`,
		`{"dup":1,"dup":2}`, `"` + strings.Repeat("z", 5000) + `"`,
	}
	mids := map[string]bool{}
	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for _, v := range append(values, "") {
			body := `{"clientId":` + jsonStr(c.id) + `,"sendUserId":"u1","code":7,"msg":"hi"`
			if v != "" {
				body += `,"data":` + v
			}
			body += `}`
			r := n.postAt(t, prefix, "send_to_client", "dp", body)
			if r.Code != 0 {
				t.Errorf("%s: want code 0", r)
				continue
			}
			var res msgResult
			mustUnmarshal(t, r.Data, &res)
			checkMessageID(t, res.MessageID)
			if mids[res.MessageID] {
				t.Errorf("messageId %s returned twice", res.MessageID)
			}
			mids[res.MessageID] = true
			want := v
			if v == "" {
				want = "null"
			}
			f := c.expectPush(t, 3*time.Second)
			if string(f.Data) != want {
				t.Errorf("%s data %.80s: the frame carries data %.80s", prefix, want, f.Data)
			}
			if exp := `{"messageId":` + jsonStr(res.MessageID) + `,"sendUserId":"u1","code":7,"msg":"hi","data":` + want + `}`; string(f.Raw) != exp {
				t.Errorf("frame\n  %.200s\nwant\n  %.200s", f.Raw, exp)
			}
		}
	}

	// The same through every other push endpoint.
	n.bind(t, "dp", c.id, "g", "", "")
	for _, v := range []string{`{"b":1,"a":2}`, `1.50`, `"s"`, `[null]`} {
		for _, ep := range []string{"send_to_clients", "send_to_group", "send_to_system"} {
			body := `{"sendUserId":"x","code":-3,"msg":"m","data":` + v
			switch ep {
			case "send_to_clients":
				body += `,"clientIds":[` + jsonStr(c.id) + `]}`
			case "send_to_group":
				body += `,"groupName":"g"}`
			default:
				body += `}`
			}
			var res msgResult
			mustUnmarshal(t, n.ok(t, ep, "dp", body), &res)
			f := c.expectPush(t, 3*time.Second)
			if exp := `{"messageId":` + jsonStr(res.MessageID) + `,"sendUserId":"x","code":-3,"msg":"m","data":` + v + `}`; string(f.Raw) != exp {
				t.Errorf("%s: frame %s, want %s", ep, f.Raw, exp)
			}
		}
	}

	// Whitespace and escapes inside data and strings: the same JSON value.
	body := `{"clientId":` + jsonStr(c.id) + `,"sendUserId":"ü \"q\"","code":0,"msg":"<b>\t","data": { "a" : [ 1 , 2 ] } }`
	n.ok(t, "send_to_client", "dp", body)
	f := c.expectPush(t, 3*time.Second)
	var got, want any
	_ = json.Unmarshal(f.Data, &got)
	_ = json.Unmarshal([]byte(`{"a":[1,2]}`), &want)
	if !reflect.DeepEqual(got, want) || f.SendUserID != "ü \"q\"" || f.Msg != "<b>\t" || f.Code != 0 {
		t.Errorf("frame %s: want sendUserId %q, msg %q, data {\"a\":[1,2]}", f.Raw, "ü \"q\"", "<b>\t")
	}
	// Default code 0, msg "", sendUserId "".
	n.ok(t, "send_to_client", "dp", `{"clientId":`+jsonStr(c.id)+`}`)
	f = c.expectPush(t, 3*time.Second)
	if exp := `{"messageId":` + jsonStr(f.MessageID) + `,"sendUserId":"","code":0,"msg":"","data":null}`; string(f.Raw) != exp {
		t.Errorf("minimal send: frame %s, want %s", f.Raw, exp)
	}
}

// liveSet tracks the connected clients of one system so that a marker sent
// to the whole system proves that nothing else was queued before it.
type liveSet struct {
	n       *node
	sys     string
	clients map[string]*wsClient
	k       int
}

func newLiveSet(n *node, sys string) *liveSet {
	return &liveSet{n: n, sys: sys, clients: map[string]*wsClient{}}
}

func (l *liveSet) dial(t *testing.T) *wsClient {
	t.Helper()
	c := l.n.dial(t, l.sys)
	l.clients[c.id] = c
	return c
}

func (l *liveSet) drop(c *wsClient) { delete(l.clients, c.id) }

// marker sends a send_to_system; every live client's next frame must be it.
func (l *liveSet) marker(t *testing.T) {
	t.Helper()
	l.k++
	data := `"marker-` + strconv.Itoa(l.k) + `"`
	var res msgResult
	mustUnmarshal(t, l.n.ok(t, "send_to_system", l.sys, `{"data":`+data+`}`), &res)
	if res.Recipients == nil || *res.Recipients != len(l.clients) {
		t.Errorf("marker %d: recipients %v, want %d", l.k, res.Recipients, len(l.clients))
	}
	for _, c := range l.clients {
		f := c.expectPush(t, 3*time.Second)
		if f.MessageID != res.MessageID || string(f.Data) != data {
			t.Fatalf("client %s: want marker %s next, got %s", c.id, data, f.Raw)
		}
	}
}

// SPEC 3: 1001 to every member including the joiner; re-binding updates
// userId/extend silently; 1002 to the remaining members exactly once per
// leave (unbind, close_client, close frame, dropped TCP), per group.
func TestGroupEvents(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "ev")
	l := newLiveSet(n, "ev")
	a, b, c := l.dial(t), l.dial(t), l.dial(t)
	ev := func(cl *wsClient, group, user, extend string) memberEvent {
		return memberEvent{ClientID: cl.id, GroupName: group, UserID: user, Extend: extend}
	}

	n.bind(t, "ev", a.id, "g", "uA", "eA")
	a.expectEvent(t, 1001, ev(a, "g", "uA", "eA"))
	n.bind(t, "ev", b.id, "g", "uB", `{"json":"in extend"}`)
	a.expectEvent(t, 1001, ev(b, "g", "uB", `{"json":"in extend"}`))
	b.expectEvent(t, 1001, ev(b, "g", "uB", `{"json":"in extend"}`))
	n.bind(t, "ev", c.id, "g", "", "")
	for _, x := range []*wsClient{a, b, c} {
		x.expectEvent(t, 1001, ev(c, "g", "", ""))
	}
	l.marker(t)

	// Re-binding: nothing sent, the new userId/extend show in the next event.
	n.bind(t, "ev", b.id, "g", "uB2", "eB2")
	l.marker(t)
	if _, list := n.onlineList(t, "ev", "g"); !sameSet(list, []string{a.id, b.id, c.id}) {
		t.Errorf("group g lists %v", list)
	}

	// unbind: 1002 to a and c, not to b.
	n.unbind(t, "ev", b.id, "g")
	a.expectEvent(t, 1002, ev(b, "g", "uB2", "eB2"))
	c.expectEvent(t, 1002, ev(b, "g", "uB2", "eB2"))
	l.marker(t)

	// Join again, then close_client.
	n.bind(t, "ev", b.id, "g", "uB3", "eB3")
	for _, x := range []*wsClient{a, b, c} {
		x.expectEvent(t, 1001, ev(b, "g", "uB3", "eB3"))
	}
	n.ok(t, "close_client", "ev", map[string]any{"clientId": c.id})
	l.drop(c)
	c.expectClose(t, 1000, 5*time.Second)
	a.expectEvent(t, 1002, ev(c, "g", "", ""))
	b.expectEvent(t, 1002, ev(c, "g", "", ""))
	l.marker(t)

	// The client closes its connection (close frame).
	b.close()
	l.drop(b)
	a.expectEvent(t, 1002, ev(b, "g", "uB3", "eB3"))
	l.marker(t)

	// The TCP connection drops without a close frame.
	d := l.dial(t)
	n.bind(t, "ev", d.id, "g", "uD", "")
	a.expectEvent(t, 1001, ev(d, "g", "uD", ""))
	d.expectEvent(t, 1001, ev(d, "g", "uD", ""))
	_ = d.conn.NetConn().Close()
	l.drop(d)
	a.expectEvent(t, 1002, ev(d, "g", "uD", ""))
	l.marker(t)

	// A client in two groups leaves both: one 1002 per group.
	f := l.dial(t)
	n.bind(t, "ev", f.id, "g2", "uF", "")
	f.expectEvent(t, 1001, ev(f, "g2", "uF", ""))
	e := l.dial(t)
	n.bind(t, "ev", e.id, "g", "uE", "x")
	a.expectEvent(t, 1001, ev(e, "g", "uE", "x"))
	e.expectEvent(t, 1001, ev(e, "g", "uE", "x"))
	n.bind(t, "ev", e.id, "g2", "uE2", "y")
	f.expectEvent(t, 1001, ev(e, "g2", "uE2", "y"))
	e.expectEvent(t, 1001, ev(e, "g2", "uE2", "y"))
	e.close()
	l.drop(e)
	a.expectEvent(t, 1002, ev(e, "g", "uE", "x"))
	f.expectEvent(t, 1002, ev(e, "g2", "uE2", "y"))
	l.marker(t)
	n.waitOnlineSet(t, "ev", "g", []string{a.id}, 3*time.Second)
	n.waitOnlineSet(t, "ev", "g2", []string{f.id}, 3*time.Second)

	// The last member leaves: nobody to tell, and the group is gone.
	n.unbind(t, "ev", a.id, "g")
	l.marker(t)
	if cnt, list := n.onlineList(t, "ev", "g"); cnt != 0 || len(list) != 0 {
		t.Errorf("empty group lists %v", list)
	}
	if _, rec := n.sendToGroup(t, "ev", "g", `1`); rec != 0 {
		t.Errorf("empty group: recipients %d", rec)
	}
	a.expectNoFrame(t, 100*time.Millisecond)
}

// SPEC 3: membership events can be switched off globally.
func TestEventsOffGlobally(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false"})
	n.register(t, "q")
	eventsSilent(t, n, "q")
}

// eventsSilent runs joins and every kind of leave in sys and requires that
// no membership event reaches anyone.
func eventsSilent(t *testing.T, n *node, sys string) {
	t.Helper()
	l := newLiveSet(n, sys)
	a, b, c, d := l.dial(t), l.dial(t), l.dial(t), l.dial(t)
	for _, x := range []*wsClient{a, b, c, d} {
		n.bind(t, sys, x.id, "g", "u", "e")
	}
	l.marker(t)
	n.bind(t, sys, b.id, "g", "u2", "e2")
	n.unbind(t, sys, b.id, "g")
	n.ok(t, "close_client", sys, map[string]any{"clientId": c.id})
	l.drop(c)
	c.expectClose(t, 1000, 5*time.Second)
	d.close()
	l.drop(d)
	n.waitOnlineSet(t, sys, "g", []string{a.id}, 3*time.Second)
	l.marker(t)
	if mid, rec := n.sendToGroup(t, sys, "g", `"still"`); rec != 1 {
		t.Errorf("group send: recipients %d, want 1", rec)
	} else if f := a.expectPush(t, 3*time.Second); f.MessageID != mid {
		t.Errorf("want the group message, got %s", f.Raw)
	}
}

// SPEC 3: membership events can be switched off per system
// (eventsOffSystems); other systems keep them.
func TestEventsOffPerSystem(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_EVENTSOFFSYSTEMS": "quiet1,quiet2"})
	for _, s := range []string{"quiet1", "quiet2", "loud"} {
		n.register(t, s)
	}
	eventsSilent(t, n, "quiet1")
	eventsSilent(t, n, "quiet2")

	a, b := n.dial(t, "loud"), n.dial(t, "loud")
	n.bind(t, "loud", a.id, "g", "", "")
	a.expectEvent(t, 1001, memberEvent{ClientID: a.id, GroupName: "g"})
	n.bind(t, "loud", b.id, "g", "", "")
	a.expectEvent(t, 1001, memberEvent{ClientID: b.id, GroupName: "g"})
	b.expectEvent(t, 1001, memberEvent{ClientID: b.id, GroupName: "g"})
	n.unbind(t, "loud", b.id, "g")
	a.expectEvent(t, 1002, memberEvent{ClientID: b.id, GroupName: "g"})
}

// SPEC 3: frames the client sends are read and discarded; a frame over the
// read limit closes the connection with 1009 (and the client leaves its
// groups).
func TestReadLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_READLIMIT": "8192"})
	n.register(t, "rl")
	m := n.dial(t, "rl")
	c := n.dial(t, "rl")
	n.bind(t, "rl", m.id, "g", "", "")
	m.expectEvent(t, 1001, memberEvent{ClientID: m.id, GroupName: "g"})
	n.bind(t, "rl", c.id, "g", "", "")
	m.expectEvent(t, 1001, memberEvent{ClientID: c.id, GroupName: "g"})
	c.expectEvent(t, 1001, memberEvent{ClientID: c.id, GroupName: "g"})

	for _, size := range []int{1, 4000, 8192} {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("a", size))); err != nil {
			t.Fatalf("writing %d bytes: %v", size, err)
		}
	}
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"code":0}`)); err != nil {
		t.Fatal(err)
	}
	c.expectNoFrame(t, 200*time.Millisecond)
	mid := n.sendToClient(t, "rl", c.id, `"after"`)
	if f := c.expectPush(t, 3*time.Second); f.MessageID != mid {
		t.Fatalf("want the push, got %s", f.Raw)
	}

	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("b", 9000))); err != nil {
		t.Fatalf("writing 9000 bytes: %v", err)
	}
	c.expectClose(t, 1009, 5*time.Second)
	n.waitOffline(t, "rl", c.id, 3*time.Second)
	m.expectEvent(t, 1002, memberEvent{ClientID: c.id, GroupName: "g"})
	m.expectNoFrame(t, 200*time.Millisecond)
}

// SPEC 3: the server pings; a client that sends nothing (no pong, no frame)
// for pongWait is disconnected (close 1001, it is reading) and leaves its
// groups (one 1002); pongs or any frame keep a client alive.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{
		"GOWS_WEBSOCKET_PINGINTERVAL": "200ms",
		"GOWS_WEBSOCKET_PONGWAIT":     "1s",
	})
	n.register(t, "hb")
	var pingsMu sync.Mutex
	pings := 0
	a, err := n.dialOpts("hb", dialOpt{onPing: func() { pingsMu.Lock(); pings++; pingsMu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.abort)
	c, err := n.dialOpts("hb", dialOpt{noPong: true}) // silent, but sends frames
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.abort)
	bStart := time.Now()
	b, err := n.dialOpts("hb", dialOpt{noPong: true}) // silent: must be dropped
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.abort)
	n.bind(t, "hb", a.id, "g", "ua", "")
	a.expectEvent(t, 1001, memberEvent{ClientID: a.id, GroupName: "g", UserID: "ua"})
	n.bind(t, "hb", b.id, "g", "ub", "")
	a.expectEvent(t, 1001, memberEvent{ClientID: b.id, GroupName: "g", UserID: "ub"})
	b.expectEvent(t, 1001, memberEvent{ClientID: b.id, GroupName: "g", UserID: "ub"})
	n.bind(t, "hb", c.id, "g", "uc", "")
	for _, x := range []*wsClient{a, b, c} {
		x.expectEvent(t, 1001, memberEvent{ClientID: c.id, GroupName: "g", UserID: "uc"})
	}

	// c writes a frame every 200 ms for 2.5 s; b stays silent.
	keepUntil := time.Now().Add(2500 * time.Millisecond)
	for i := 0; i < 100 && time.Now().Before(keepUntil); i++ {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatalf("c: write: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	code, cerr := b.closeCode(3 * time.Second)
	bGone := b.EndedAt().Sub(bStart)
	if code == -2 {
		t.Fatalf("silent client still connected %v after connecting (pongWait 1s)", time.Since(bStart))
	}
	if code != 1001 {
		t.Errorf("silent client: want close 1001 (it was reading), got %d (%v)", code, cerr)
	}
	if bGone < 800*time.Millisecond || bGone > 2500*time.Millisecond {
		t.Errorf("silent client dropped %v after connecting, want about pongWait (1s)", bGone)
	}
	if n.isOnline(t, "hb", b.id) {
		t.Errorf("dropped client still online")
	}
	a.expectEvent(t, 1002, memberEvent{ClientID: b.id, GroupName: "g", UserID: "ub"})
	c.expectEvent(t, 1002, memberEvent{ClientID: b.id, GroupName: "g", UserID: "ub"})

	// a (answers pings) and c (sends frames) survived 2.5 pongWaits.
	if !n.isOnline(t, "hb", a.id) || !n.isOnline(t, "hb", c.id) {
		t.Fatalf("a client that answers pings or sends frames was dropped")
	}
	pingsMu.Lock()
	if pings < 5 {
		t.Errorf("a received %d pings in 2.5s with pingInterval 200ms", pings)
	}
	pingsMu.Unlock()

	// c falls silent and is dropped too; a sees one 1002.
	code, cerr = c.closeCode(4 * time.Second)
	if code != 1001 {
		t.Errorf("c after falling silent: want close 1001, got %d (%v)", code, cerr)
	}
	a.expectEvent(t, 1002, memberEvent{ClientID: c.id, GroupName: "g", UserID: "uc"})
	a.expectNoFrame(t, 300*time.Millisecond)
	if !n.isOnline(t, "hb", a.id) {
		t.Errorf("a was dropped")
	}
}

// SPEC 3: messages to one client arrive in the order the API accepted them:
// 1,000 send_to_client calls, then 200 calls mixing all four push
// endpoints; messageIds are unique.
func TestOrdering(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false"})
	n.register(t, "ord")
	c := n.dial(t, "ord")
	n.bind(t, "ord", c.id, "g", "", "")
	const unicast, mixed = 1000, 200
	mids := make([]string, 0, unicast+mixed)
	seen := map[string]bool{}
	for i := 0; i < unicast+mixed; i++ {
		data := strconv.Itoa(i)
		ep, body := "send_to_client", `{"clientId":`+jsonStr(c.id)+`,"data":`+data+`}`
		if i >= unicast {
			switch i % 4 {
			case 1:
				ep, body = "send_to_group", `{"groupName":"g","data":`+data+`}`
			case 2:
				ep, body = "send_to_clients", `{"clientIds":[`+jsonStr(c.id)+`],"data":`+data+`}`
			case 3:
				ep, body = "send_to_system", `{"data":`+data+`}`
			}
		}
		var res msgResult
		mustUnmarshal(t, n.ok(t, ep, "ord", body), &res)
		if seen[res.MessageID] {
			t.Fatalf("messageId %s returned twice", res.MessageID)
		}
		seen[res.MessageID] = true
		mids = append(mids, res.MessageID)
	}
	for i := range mids {
		f := c.expectPush(t, 5*time.Second)
		if string(f.Data) != strconv.Itoa(i) || f.MessageID != mids[i] {
			t.Fatalf("frame %d: got %s, want data %d messageId %s", i, f.Raw, i, mids[i])
		}
	}
	c.expectNoFrame(t, 100*time.Millisecond)
}

// SPEC 3: membership events follow the membership they describe. Binds and
// unbinds of one client race each other; a member replaying the 1001/1002
// events it receives must never see a join of a member already in, a leave
// of one not in, and must end each round with the group's real membership.
func TestEventsFollowMembership(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "race")
	l := newLiveSet(n, "race")
	obs, x := l.dial(t), l.dial(t)
	n.bind(t, "race", obs.id, "g", "", "")
	obs.expectEvent(t, 1001, memberEvent{ClientID: obs.id, GroupName: "g"})
	l.marker(t)

	in := false // membership of x as replayed from obs's events
	const rounds = 300
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, ep := range []string{"bind_to_group", "unbind_from_group"} {
			wg.Add(1)
			go func(ep string) {
				defer wg.Done()
				resp, err := n.do(http.MethodPost, mainPrefix+ep, sysHeader("race"),
					bodyBytes(map[string]any{"clientId": x.id, "groupName": "g"}))
				// (unbinding a non-member is not specified: any proper answer)
				if err == nil && resp.Code != 0 && ep == "bind_to_group" {
					err = fmt.Errorf("%s: want code 0", resp)
				}
				errs <- err
			}(ep)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		_, list := n.onlineList(t, "race", "g")
		actual := false
		for _, id := range list {
			actual = actual || id == x.id
		}
		// Everything the two calls emitted was queued before they returned;
		// a marker after them closes the round.
		var res msgResult
		mustUnmarshal(t, n.ok(t, "send_to_system", "race", `{"data":"round"}`), &res)
		for k := 0; k < 10; k++ {
			f := obs.expectPush(t, 3*time.Second)
			if f.MessageID == res.MessageID {
				break
			}
			var ev memberEvent
			_ = json.Unmarshal(f.Data, &ev)
			switch {
			case f.Code == 1001 && ev.ClientID == x.id:
				if in {
					t.Fatalf("round %d: 1001 for %s, already a member (duplicate join event)", r, x.id)
				}
				in = true
			case f.Code == 1002 && ev.ClientID == x.id:
				if !in {
					t.Fatalf("round %d: 1002 for %s, not a member (leave event out of order or twice)", r, x.id)
				}
				in = false
			default:
				t.Fatalf("round %d: unexpected frame %s", r, f.Raw)
			}
		}
		if in != actual {
			t.Fatalf("round %d: the events say member=%v, get_online_list says %v", r, in, actual)
		}
		// x's own frames (its 1001s) are not checked here; drop them.
		for k := 0; k < 100 && x.pending() > 0; k++ {
			_, _ = x.next(time.Millisecond)
		}
	}
}
