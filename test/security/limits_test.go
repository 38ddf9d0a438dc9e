package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// SPEC 2/5, README: an API body over server.maxBodyBytes gets 10007/413 (with
// or without a Content-Length), on every endpoint and both path sets; a body
// at the limit is served.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 1024
	n := startNode(t, env{kMaxBody: strconv.Itoa(limit)})
	n.register(t, "body")
	c := n.dial(t, "body")

	big := `{"data":"` + strings.Repeat("x", 2*limit) + `"}`
	for _, prefix := range prefixes {
		for _, ep := range endpoints {
			r := n.raw(t, prefix+ep, n.headers("body"), big)
			wantCode(t, r, 10007, "body of "+strconv.Itoa(len(big))+" bytes")
		}
	}
	// Without Content-Length (chunked): the limit holds while reading.
	for _, ep := range []string{"send_to_system", "register", "send_to_client"} {
		body := io.MultiReader(strings.NewReader(`{"clientId":"`+c.ID+`","systemId":"x","data":"`), strings.NewReader(strings.Repeat("y", 4*limit)), strings.NewReader(`"}`))
		r, err := send(n.HC, http.MethodPost, n.URL+mainPrefix+ep, n.headers("body"), body)
		if r == nil {
			t.Fatalf("chunked %s: %v", ep, err)
		}
		if err != nil {
			t.Error(err)
		}
		wantCode(t, r, 10007, "chunked body over the limit")
	}
	// At the limit: served.
	pad := limit - len(`{"clientId":"`+c.ID+`","data":""}`)
	atLimit := `{"clientId":"` + c.ID + `","data":"` + strings.Repeat("z", pad) + `"}`
	if len(atLimit) != limit {
		t.Fatalf("test bug: body of %d bytes", len(atLimit))
	}
	r := n.post(t, "send_to_client", "body", atLimit)
	wantCode(t, r, 0, "body of exactly maxBodyBytes")
	if p := c.NextFrame(t, 5*time.Second); len(p.Data) != pad+2 {
		t.Errorf("pushed data of %d bytes, want %d", len(p.Data), pad+2)
	}
	if v := n.waitMetric(t, "gows_api_requests_total", map[string]string{"code": "10007"}, float64(2*len(endpoints)+3)); int(v) != 2*len(endpoints)+3 {
		t.Errorf("gows_api_requests_total{code=\"10007\"} = %v, want %d", v, 2*len(endpoints)+3)
	}
}

// SPEC 3: a client frame over websocket.readLimit closes the connection with
// 1009 (also when the message is split into fragments, and for binary
// frames); a frame at the limit is fine.
func TestFrameLimit(t *testing.T) {
	t.Parallel()
	const limit = 512
	n := startNode(t, env{kReadLimit: strconv.Itoa(limit)})
	n.register(t, "fr")

	ok := n.dial(t, "fr")
	if err := ok.Conn.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), limit)); err != nil {
		t.Fatal(err)
	}
	mid := n.sendTo(t, "fr", ok.ID, `"still here"`)
	ok.ExpectID(t, mid, "after a frame at the limit")

	before := n.metric(t, "gows_disconnects_total", map[string]string{"reason": "too_big"})
	for _, typ := range []int{websocket.TextMessage, websocket.BinaryMessage} {
		c := n.dial(t, "fr")
		if err := c.Conn.WriteMessage(typ, bytes.Repeat([]byte("b"), limit+1)); err != nil {
			t.Fatal(err)
		}
		if code, _, err := c.CloseFrames(5 * time.Second); code != websocket.CloseMessageTooBig {
			t.Errorf("frame type %d of %d bytes: want close 1009, got %d (%v)", typ, limit+1, code, err)
		}
		n.waitOffline(t, "fr", c.ID, 5*time.Second)
	}
	// Fragments of 300 bytes each: the message, not the frame, is limited.
	rc, err := n.rawUpgrade(t, "fr")
	if err != nil {
		t.Fatal(err)
	}
	id, err := rc.WelcomeID()
	if err != nil {
		t.Fatal(err)
	}
	frag := bytes.Repeat([]byte("c"), 300)
	if _, err := rc.NC.Write(append(wstest.ClientFrame(0x01, frag, true), wstest.ClientFrame(0x80, frag, true)...)); err != nil {
		t.Fatal(err)
	}
	if code, ended, after, err := rc.WaitEnd(5 * time.Second); code != websocket.CloseMessageTooBig || !ended || after != 0 {
		t.Errorf("fragmented message of 600 bytes: want close 1009, nothing after it, and the end of the connection; got %d, %d frames after it, ended %v (%v)", code, after, ended, err)
	}
	n.waitOffline(t, "fr", id, 5*time.Second)
	if d := n.waitMetric(t, "gows_disconnects_total", map[string]string{"reason": "too_big"}, before+3) - before; d != 3 {
		t.Errorf("gows_disconnects_total{reason=\"too_big\"} moved by %v, want 3", d)
	}
	if !n.isOnline(t, "fr", ok.ID) {
		t.Errorf("the well-behaved client was dropped")
	}
}

// SPEC 3, README: websocket.maxConnections (per node) and
// maxConnectionsPerSystem refuse with the error envelope (10010) and close
// 4429; refused connects are not online and are counted; a freed slot can be
// used again.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	n := startNode(t, env{kMaxConns: "3", kMaxConnsSys: "2"})
	n.register(t, "la", "lb")
	before := n.metric(t, "gows_connects_refused_total", map[string]string{"reason": "limit"})
	a1 := n.dial(t, "la")
	n.dial(t, "la")
	n.refused(t, "la", dialOpt{}, 10010, 4429, "third client of a system (limit 2)")
	n.dial(t, "lb")
	n.refused(t, "lb", dialOpt{}, 10010, 4429, "fourth client of the node (limit 3)")
	n.refused(t, "lb", dialOpt{path: legacyWSPath}, 10010, 4429, "fourth client of the node on /ws")
	if d := n.metric(t, "gows_connects_refused_total", map[string]string{"reason": "limit"}) - before; d != 3 {
		t.Errorf("gows_connects_refused_total{reason=\"limit\"} moved by %v, want 3", d)
	}
	if got := n.onlineList(t, "la", ""); len(got) != 2 {
		t.Errorf("system la: %d online, want 2", len(got))
	}
	if got := n.onlineList(t, "lb", ""); len(got) != 1 {
		t.Errorf("system lb: %d online, want 1", len(got))
	}
	a1.Close()
	n.waitOffline(t, "la", a1.ID, 5*time.Second)
	// The slot is freed as the client leaves; poll (bounded) for the
	// moment the node counts it free.
	var a3 *wstest.Client
	for i := 0; i < 50 && a3 == nil; i++ {
		c, err := n.connect(t, "la", dialOpt{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Next(5 * time.Second)
		if err == nil {
			if w, werr := wstest.ParseWelcome(b); werr == nil {
				c.ID, c.Welcome = w.ClientID, w
				a3 = c
				break
			}
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if a3 == nil {
		t.Fatalf("no client could connect in the slot a1 freed")
	}
	mid := n.sendTo(t, "la", a3.ID, `1`)
	if f := a3.ExpectPush(t, 5*time.Second); f.MessageID != mid {
		t.Errorf("client in a freed slot: got %s, want messageId %s", f.Raw, mid)
	}
}

// SPEC 6, README: API requests per system are limited (rate 5/s, burst 5):
// the 6th call of a burst gets 10010/429 with Retry-After (integer seconds,
// at least 1); the bucket is per system (both path sets share it, other
// systems are unaffected); it refills; gows_api_rate_limited_total counts.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, env{kRateLimit: "5", kRateBurst: "5"})
	n.register(t, "busy", "calm") // register carries no systemId header
	// Warm the keep-alive connection without spending tokens.
	if resp, err := n.HC.Get(n.URL + "/healthz"); err == nil {
		resp.Body.Close()
	}
	before := n.metric(t, "gows_api_rate_limited_total", nil)

	type result struct {
		code       int
		retryAfter string
		at         time.Duration
	}
	var res []result
	start := time.Now()
	for i := 0; i < 12; i++ {
		r := n.postAt(t, prefixes[i%2], "get_online_list", "busy", `{}`)
		res = append(res, result{r.Code, r.Header.Get("Retry-After"), time.Since(start)})
		if r.Code != 0 && r.Code != 10010 {
			t.Errorf("call %d: %s, want 0 or 10010", i+1, r)
		}
	}
	elapsed := time.Since(start)
	served, limited := 0, 0
	for i, r := range res {
		if r.code == 0 {
			served++
			continue
		}
		limited++
		if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 {
			t.Errorf("call %d: 10010 with Retry-After %q, want an integer number of seconds >= 1", i+1, r.retryAfter)
		}
	}
	for i := 0; i < 5; i++ {
		if res[i].code != 0 {
			t.Errorf("call %d of the burst (burst 5): code %d, want 0", i+1, res[i].code)
		}
	}
	// A token comes back every 200 ms: the 6th call is limited unless the
	// first six took that long (a very slow machine).
	if res[5].at < 150*time.Millisecond && res[5].code != 10010 {
		t.Errorf("6th call after %v: code %d, want 10010", res[5].at, res[5].code)
	}
	if max := 5 + int(5*elapsed.Seconds()) + 1; served > max {
		t.Errorf("%d of 12 calls served in %v at 5/s burst 5 (at most %d)", served, elapsed, max)
	}
	if limited == 0 {
		t.Fatalf("no call limited: %+v", res)
	}
	// Another system has its own bucket.
	for i := 0; i < 5; i++ {
		wantCode(t, n.post(t, "get_online_list", "calm", `{}`), 0, "other system during busy's limit")
	}
	if d := n.metric(t, "gows_api_rate_limited_total", nil) - before; int(d) != limited {
		t.Errorf("gows_api_rate_limited_total moved by %v, want %d", d, limited)
	}
	// The bucket refills: after Retry-After, busy is served again.
	wait, _ := strconv.Atoi(res[len(res)-1].retryAfter)
	if res[len(res)-1].code != 10010 || wait > 2 {
		wait = 1
	}
	time.Sleep(time.Duration(wait) * time.Second)
	wantCode(t, n.post(t, "get_online_list", "busy", `{}`), 0, "after Retry-After")
}

// SPEC 5/6: the rate limit holds under concurrent calls: 40 calls from 8
// goroutines at 5/s burst 5 serve at most burst + rate x elapsed, limit the
// rest with 10010, and leave another system's budget alone.
func TestRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	n := startNode(t, env{kRateLimit: "5", kRateBurst: "5"})
	n.register(t, "busy", "calm")
	var mu sync.Mutex
	limited, okCount := 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				r, err := send(n.HC, http.MethodPost, n.URL+mainPrefix+"get_online_list", n.headers("busy"), strings.NewReader(`{}`))
				mu.Lock()
				switch {
				case err != nil:
					t.Error(err)
				case r.Code == 0:
					okCount++
				case r.Code == 10010:
					limited++
				default:
					t.Errorf("%s: want 0 or 10010", r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if max := 5 + int(5*elapsed.Seconds()) + 1; limited == 0 || okCount == 0 || okCount > max {
		t.Errorf("40 calls in %v at 5/s burst 5: %d served (at most %d expected), %d limited", elapsed, okCount, max, limited)
	}
	if r := n.post(t, "get_online_list", "calm", `{}`); r.Code != 0 {
		t.Errorf("another system is limited too: %s", r)
	}
}

// SPEC 3: a client that sends no complete frame and no pong for pongWait is
// disconnected; trickling the bytes of a frame under the read limit (a
// WebSocket slowloris) must not keep a connection alive past pongWait.
func TestTricklingFrame(t *testing.T) {
	t.Parallel()
	n := startNode(t, env{"GOWS_WEBSOCKET_PINGINTERVAL": "500ms", "GOWS_WEBSOCKET_PONGWAIT": "2s"})
	n.register(t, "tr")
	rc, err := n.rawUpgrade(t, "tr")
	if err != nil {
		t.Fatal(err)
	}
	id, err := rc.WelcomeID()
	if err != nil {
		t.Fatal(err)
	}
	// A binary frame announcing 8000 bytes (under the 8 KiB read limit),
	// then one byte every 100 ms.
	hdr := []byte{0x82, 0x80 | 126, 0x1f, 0x40, 9, 8, 7, 6}
	if _, err := rc.NC.Write(hdr); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_ = rc.NC.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := rc.NC.Write([]byte{byte(i)}); err != nil {
				return
			}
		}
	}()
	code, ended, after, err := rc.WaitEnd(8 * time.Second)
	close(stop)
	<-done
	el := time.Since(start)
	if !ended || el > 5*time.Second {
		t.Errorf("trickling frame: connection still open after %v (pongWait 2s): ended %v, close code %d (%v)", el, ended, code, err)
	}
	if code != -1 && code != 1001 {
		t.Errorf("trickling frame: close code %d, want 1001 (heartbeat timeout) or none", code)
	}
	if after != 0 {
		t.Errorf("trickling frame: %d frames after the close frame", after)
	}
	t.Logf("trickling frame: closed after %v with close code %d", el, code)
	n.waitOffline(t, "tr", id, 3*time.Second)
}

// SPEC 3: the connection limits hold under a burst of simultaneous connects:
// exactly the limit is admitted, everyone else gets 10010 and 4429.
func TestConnectionLimitBurst(t *testing.T) {
	t.Parallel()
	n := startNode(t, env{kMaxConns: "8", kMaxConnsSys: "3"})
	systems := []string{"b1", "b2", "b3", "b4"}
	n.register(t, systems...)
	const perSystem = 10
	type outcome struct {
		system   string
		admitted bool
		err      string
	}
	results := make(chan outcome, perSystem*len(systems))
	var wg sync.WaitGroup
	for _, sys := range systems {
		for i := 0; i < perSystem; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := n.connect(t, sys, dialOpt{})
				if err != nil {
					results <- outcome{sys, false, "connect: " + err.Error()}
					return
				}
				b, err := c.Next(5 * time.Second)
				var w struct {
					Code *int `json:"code"`
				}
				switch {
				case err != nil:
					results <- outcome{sys, false, "no first frame: " + err.Error()}
				case json.Unmarshal(b, &w) != nil || w.Code == nil:
					results <- outcome{sys, false, "first frame " + string(b)}
				case *w.Code == 0:
					results <- outcome{sys, true, ""} // stays open until the test ends
				case *w.Code != 10010:
					results <- outcome{sys, false, "refused with " + string(b) + ", want code 10010"}
				default:
					if code, _, err := c.CloseFrames(5 * time.Second); code != 4429 {
						results <- outcome{sys, false, fmt.Sprintf("refused without close 4429: %d (%v)", code, err)}
						return
					}
					results <- outcome{sys, false, ""}
				}
			}()
		}
	}
	wg.Wait()
	close(results)
	admitted := map[string]int{}
	total := 0
	for r := range results {
		if r.err != "" {
			t.Errorf("%s: %s", r.system, r.err)
		}
		if r.admitted {
			admitted[r.system]++
			total++
		}
	}
	if total != 8 {
		t.Errorf("%d connections admitted out of %d simultaneous connects, want exactly 8 (maxConnections): %v", total, perSystem*len(systems), admitted)
	}
	for _, sys := range systems {
		if admitted[sys] > 3 {
			t.Errorf("system %s: %d connections admitted, at most 3 (maxConnectionsPerSystem)", sys, admitted[sys])
		}
		if got := n.onlineList(t, sys, ""); len(got) != admitted[sys] {
			t.Errorf("system %s: %d online, %d admitted", sys, len(got), admitted[sys])
		}
	}
}
