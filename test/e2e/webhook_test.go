package e2e

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// hookEvent is one webhook event as a receiver sees it.
type hookEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Time      int64           `json:"time"`
	SystemID  string          `json:"systemId"`
	ClientID  string          `json:"clientId"`
	UserID    string          `json:"userId"`
	GroupName string          `json:"groupName"`
	Reason    string          `json:"reason"`
	Data      json.RawMessage `json:"data"`
}

// receiver is a webhook endpoint inside the test: it verifies every POST's
// signature with the secret it is given, records events in arrival order and
// can be switched down (connections closed at once) or to hang.
type receiver struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	secret   string
	mode     string // "", "down", "hang"
	posts    int
	badSigs  int
	events   []hookEvent
	seen     map[string]bool
	dups     int
	notify   chan struct{}
	hangDone chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t, seen: map[string]bool{}, notify: make(chan struct{}, 1), hangDone: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		close(r.hangDone)
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hook" }

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *receiver) setMode(m string) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	mode := r.mode
	r.mu.Unlock()
	switch mode {
	case "down":
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "hang":
		select {
		case <-req.Context().Done():
		case <-r.hangDone:
		}
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ts := req.Header.Get("X-Gows-Timestamp")
	sig := req.Header.Get("X-Gows-Signature")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if !hmac.Equal([]byte(sig), []byte(want)) || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		r.badSigs++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p struct {
		Events []hookEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &p); err != nil || len(p.Events) == 0 || len(p.Events) > 100 {
		r.t.Errorf("webhook body %.300s: %v (%d events; want 1-100)", body, err, len(p.Events))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, ev := range p.Events {
		if r.seen[ev.ID] {
			r.dups++
			continue
		}
		r.seen[ev.ID] = true
		r.events = append(r.events, ev)
	}
	w.WriteHeader(http.StatusNoContent)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// snapshot returns the distinct events received so far, in arrival order.
func (r *receiver) snapshot() []hookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookEvent(nil), r.events...)
}

// waitFor waits (bounded) until cond holds for the events received.
func (r *receiver) waitFor(t testing.TB, within time.Duration, what string, cond func([]hookEvent) bool) []hookEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := r.snapshot()
		if cond(evs) {
			return evs
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("webhook receiver: not within %v: %s; got %d events: %s", within, what, len(evs), summarize(evs))
		}
		select {
		case <-r.notify:
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
}

func summarize(evs []hookEvent) string {
	var b strings.Builder
	for i, ev := range evs {
		if i == 40 {
			b.WriteString("...")
			break
		}
		fmt.Fprintf(&b, "%s/%s/%s/%s ", ev.Type, short(ev.ClientID), ev.GroupName, ev.Reason)
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 6 {
		return id[len(id)-6:]
	}
	return id
}

// sequence is the events of one client as "type[:group][:reason]" strings.
func sequence(evs []hookEvent, clientID string) []string {
	var out []string
	for _, ev := range evs {
		if ev.ClientID != clientID {
			continue
		}
		s := ev.Type
		if ev.GroupName != "" {
			s += ":" + ev.GroupName
		}
		if ev.Type == "disconnect" {
			s += ":" + ev.Reason
		}
		out = append(out, s)
	}
	return out
}

type registered struct {
	SystemID      string `json:"systemId"`
	WebhookSecret string `json:"webhookSecret"`
}

// registerHook registers systemID with a webhook to r for events.
func (n *node) registerHook(t testing.TB, systemID string, r *receiver, events ...string) {
	t.Helper()
	data := n.ok(t, "register", "", map[string]any{"systemId": systemID, "webhookUrl": r.url(), "webhookEvents": events})
	var reg registered
	mustUnmarshal(t, data, &reg)
	if reg.SystemID != systemID || len(reg.WebhookSecret) < 32 {
		t.Fatalf("register answered %s", data)
	}
	r.setSecret(reg.WebhookSecret)
}

// metricSum adds the samples of a metric whose labels contain every filter.
func (n *node) metricSum(t testing.TB, name string, filters ...string) float64 {
	t.Helper()
	resp, err := n.hc.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, f := range filters {
			if !strings.Contains(line, f) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

var allEvents = []string{"connect", "disconnect", "join", "leave", "message"}

// Every event is posted, signed, at least once, in order per client, with
// the disconnect reasons of client close and close_client.
func TestWebhookEventsSignedAndOrdered(t *testing.T) {
	t.Parallel()
	r := newReceiver(t) // created first: it outlives the node
	n := startNode(t, nil)
	n.registerHook(t, "wh1", r, allEvents...)

	const clients = 6
	cs := make([]*wsClient, clients)
	for i := range cs {
		cs[i] = n.dial(t, "wh1")
	}
	for i, c := range cs {
		n.bind(t, "wh1", c.id, "room", "u"+strconv.Itoa(i), "")
		n.bind(t, "wh1", c.id, "other", "", "")
	}
	for _, c := range cs {
		n.unbind(t, "wh1", c.id, "other")
	}
	for i, c := range cs {
		if i%2 == 0 {
			c.close()
		} else {
			n.ok(t, "close_client", "wh1", map[string]any{"clientId": c.id})
		}
	}
	// Per client: connect, join room, join other, leave other, leave room
	// (on disconnect), disconnect.
	evs := r.waitFor(t, 10*time.Second, "6 events per client", func(evs []hookEvent) bool { return len(evs) >= clients*6 })
	for i, c := range cs {
		reason := "client_close"
		if i%2 == 1 {
			reason = "close_client"
		}
		want := []string{"connect", "join:room", "join:other", "leave:other", "leave:room", "disconnect:" + reason}
		if got := sequence(evs, c.id); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("client %d events %v, want %v", i, got, want)
		}
	}
	ids := map[string]bool{}
	for _, ev := range evs {
		if ev.ID == "" || ids[ev.ID] || ev.SystemID != "wh1" || ev.Time <= 0 {
			t.Errorf("bad event %+v", ev)
		}
		ids[ev.ID] = true
		if ev.Type == "join" && ev.GroupName == "room" && !strings.HasPrefix(ev.UserID, "u") {
			t.Errorf("join event without the bound userId: %+v", ev)
		}
	}
	r.mu.Lock()
	bad, posts := r.badSigs, r.posts
	r.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d of %d POSTs had a bad signature", bad, posts)
	}
	// The metric counts a batch once its POST's answer is read.
	if !wstest.PollEvery(5*time.Second, 20*time.Millisecond, func() bool {
		return n.metricSum(t, "gows_webhook_posted_total", `system="wh1"`) >= clients*6
	}) {
		t.Errorf("gows_webhook_posted_total = %v, want >= %d", n.metricSum(t, "gows_webhook_posted_total", `system="wh1"`), clients*6)
	}
	t.Logf("%d events in %d POSTs", len(evs), posts)
}

// update_system changes only what it is given; get_system shows no secret;
// an unsubscribed event type is never posted; a rotated secret signs from
// then on.
func TestWebhookSettingsAndSubscription(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	n := startNode(t, nil)
	n.registerHook(t, "wh2", r, "disconnect")
	got := n.ok(t, "get_system", "wh2", nil)
	var info struct {
		SystemID      string   `json:"systemId"`
		WebhookURL    string   `json:"webhookUrl"`
		WebhookEvents []string `json:"webhookEvents"`
		WebhookSecret *string  `json:"webhookSecret"`
	}
	mustUnmarshal(t, got, &info)
	if info.SystemID != "wh2" || info.WebhookURL != r.url() || strings.Join(info.WebhookEvents, ",") != "disconnect" || info.WebhookSecret != nil {
		t.Fatalf("get_system: %s", got)
	}
	n.fail(t, "update_system", "wh2", map[string]any{"webhookEvents": []string{"connect", "typo"}}, 10001)
	n.fail(t, "update_system", "wh2", map[string]any{"webhookUrl": "ftp://127.0.0.1/x"}, 10001)
	n.fail(t, "register", "", map[string]any{"systemId": "wh2b", "webhookUrl": "javascript:alert(1)"}, 10001)
	n.fail(t, "get_system", "nosuch", nil, 10003)

	c := n.dial(t, "wh2") // connect is not subscribed
	c.close()
	evs := r.waitFor(t, 10*time.Second, "the disconnect", func(evs []hookEvent) bool { return len(evs) >= 1 })
	if evs[0].Type != "disconnect" || evs[0].ClientID != c.id {
		t.Fatalf("first event %+v, want only the disconnect of %s", evs[0], c.id)
	}

	// Rotate the secret and subscribe to connect: the new secret signs.
	data := n.ok(t, "update_system", "wh2", map[string]any{"webhookEvents": []string{"connect"}, "rotateSecret": true})
	var up struct {
		WebhookURL    string   `json:"webhookUrl"`
		WebhookEvents []string `json:"webhookEvents"`
		WebhookSecret string   `json:"webhookSecret"`
	}
	mustUnmarshal(t, data, &up)
	if up.WebhookURL != r.url() || strings.Join(up.WebhookEvents, ",") != "connect" || len(up.WebhookSecret) < 32 {
		t.Fatalf("update_system answered %s", data)
	}
	r.setSecret(up.WebhookSecret)
	c2 := n.dial(t, "wh2")
	r.waitFor(t, 10*time.Second, "the connect signed with the new secret", func(evs []hookEvent) bool {
		return len(evs) >= 2 && evs[1].Type == "connect" && evs[1].ClientID == c2.id
	})
	c2.close()
	// The disconnect is no longer subscribed: give it time, it never comes.
	c3 := n.dial(t, "wh2")
	r.waitFor(t, 10*time.Second, "the third connect", func(evs []hookEvent) bool { return len(evs) >= 3 })
	if evs := r.snapshot(); len(evs) != 3 || evs[2].ClientID != c3.id || evs[2].Type != "connect" {
		t.Fatalf("events after unsubscribing disconnect: %s", summarize(evs))
	}
	// Without an update the secret is not shown again.
	data = n.ok(t, "update_system", "wh2", map[string]any{"webhookEvents": allEvents})
	if strings.Contains(string(data), "webhookSecret") {
		t.Fatalf("update without rotation showed a secret: %s", data)
	}
}

// A receiver down for 30 s loses nothing within the retry window; past the
// queue size, the oldest events are dropped and counted.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	rs := newReceiver(t)
	n := startNode(t, nil)
	small := startNode(t, map[string]string{"GOWS_WEBHOOK_QUEUESIZE": "20"})
	n.registerHook(t, "whd", r, allEvents...)
	small.registerHook(t, "whs", rs, "connect", "disconnect")
	r.setMode("down")
	rs.setMode("down")

	const clients = 40
	var ids []string
	down := time.Now()
	for range clients {
		c := n.dial(t, "whd")
		ids = append(ids, c.id)
		n.bind(t, "whd", c.id, "g", "", "")
		c.close()
		s := small.dial(t, "whs")
		s.close()
	}
	for n.metricSum(t, "gows_webhook_retries_total", `system="whd"`) < 3 && time.Since(down) < 20*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	if n.metricSum(t, "gows_webhook_retries_total", `system="whd"`) < 3 {
		t.Fatal("no retries counted while the receiver is down")
	}
	time.Sleep(time.Until(down.Add(30 * time.Second)))
	r.setMode("")
	rs.setMode("")
	up := time.Now()
	evs := r.waitFor(t, 20*time.Second, "every event after the receiver came back", func(evs []hookEvent) bool { return len(evs) >= clients*4 })
	t.Logf("receiver down %v; all %d events within %v after it came back", up.Sub(down).Round(time.Second), len(evs), time.Since(up).Round(time.Millisecond))
	for _, id := range ids {
		want := "connect join:g leave:g disconnect:client_close"
		if got := strings.Join(sequence(evs, id), " "); got != want {
			t.Errorf("client %s: %s, want %s", short(id), got, want)
		}
	}
	if d := n.metricSum(t, "gows_webhook_dropped_total", `system="whd"`); d != 0 {
		t.Errorf("%v events dropped within the retry window", d)
	}
	// The small queue: 80 events while down, at most 20 queued besides the
	// batch in flight; every event is either delivered or counted dropped.
	var dropped float64
	sevs := rs.waitFor(t, 20*time.Second, "delivered + dropped = 80", func(evs []hookEvent) bool {
		dropped = small.metricSum(t, "gows_webhook_dropped_total", `system="whs"`, `reason="queue_full"`)
		return float64(len(evs))+dropped == 2*clients
	})
	if dropped == 0 || len(sevs) < 20 {
		t.Errorf("queue of 20, 80 events while down: %d delivered, %v dropped", len(sevs), dropped)
	}
}

// A receiver that hangs costs WebSocket delivery nothing: a group send with
// join/leave webhooks pending against it is as fast as without webhooks.
func TestWebhookHangingReceiverDoesNotDelayGroupSend(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBHOOK_TIMEOUT": "30s"})
	r := newReceiver(t)
	r.setMode("hang")
	n.registerHook(t, "whh", r, allEvents...)
	n.register(t, "whn")
	measure := func(sys string) time.Duration {
		const members = 50
		cs := make([]*wsClient, members)
		for i := range cs {
			cs[i] = n.dial(t, sys)
			n.ok(t, "bind_to_group", sys, map[string]any{"clientId": cs[i].id, "groupName": "g"})
		}
		// Drain the join events.
		for _, c := range cs {
			for c.pending() > 0 {
				_, _ = c.next(time.Second)
			}
		}
		var worst time.Duration
		for round := range 5 {
			for _, c := range cs {
				for c.pending() > 0 {
					_, _ = c.next(time.Second)
				}
			}
			start := time.Now()
			n.ok(t, "send_to_group", sys, map[string]any{"groupName": "g", "data": round})
			for _, c := range cs {
				f, err := c.nextAt(5 * time.Second)
				if err != nil {
					t.Fatalf("%s round %d: %v", sys, round, err)
				}
				if d := f.at.Sub(start); d > worst {
					worst = d
				}
			}
		}
		for _, c := range cs {
			c.close()
		}
		return worst
	}
	with := measure("whh")
	without := measure("whn")
	t.Logf("send_to_group to 50 members, slowest delivery of 5 rounds: %v with a hanging webhook receiver, %v without webhooks", with, without)
	if with > 500*time.Millisecond {
		t.Fatalf("a hanging webhook receiver delayed a group send: %v", with)
	}
}

// Upstream messages become message events (in order, data as sent) when
// subscribed; a client above the upstream rate is closed with 1008.
func TestWebhookUpstreamMessages(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	n := startNode(t, map[string]string{"GOWS_WEBHOOK_UPSTREAMRATE": "5", "GOWS_WEBHOOK_UPSTREAMBURST": "10"})
	n.registerHook(t, "whu", r, "message")
	c := n.dial(t, "whu")
	n.bind(t, "whu", c.id, "g", "alice", "")
	for i := range 5 {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"upstream":{"n":%d,"text":"héllo"}}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// Not upstream messages: an ack for nothing, other JSON, plain text.
	for _, s := range []string{`{"ack":"nothing"}`, `{"other":1}`, `hello`} {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	evs := r.waitFor(t, 10*time.Second, "5 message events", func(evs []hookEvent) bool { return len(evs) >= 5 })
	for i, ev := range evs {
		want := fmt.Sprintf(`{"n":%d,"text":"héllo"}`, i)
		if ev.Type != "message" || ev.ClientID != c.id || string(ev.Data) != want {
			t.Errorf("event %d: %+v, want message with data %s", i, ev, want)
		}
	}
	// A flood: the burst of 10 is spent at once, then the client is closed.
	for i := range 30 {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"upstream":"flood `+strconv.Itoa(i)+`"}`)); err != nil {
			break
		}
	}
	c.expectClose(t, 1008, 5*time.Second)
	if got := len(r.snapshot()); got > 5+11 {
		t.Errorf("%d message events: the flood passed the rate limit", got)
	}
	// Without a message subscription upstream frames are only read.
	r2 := newReceiver(t)
	n.registerHook(t, "whu2", r2, "connect")
	c2 := n.dial(t, "whu2")
	if err := c2.conn.WriteMessage(websocket.TextMessage, []byte(`{"upstream":1}`)); err != nil {
		t.Fatal(err)
	}
	c3 := n.dial(t, "whu2")
	evs = r2.waitFor(t, 10*time.Second, "both connects", func(evs []hookEvent) bool { return len(evs) >= 2 })
	if evs[0].ClientID != c2.id || evs[1].ClientID != c3.id || len(r2.snapshot()) != 2 {
		t.Fatalf("events of a system without message subscription: %s", summarize(r2.snapshot()))
	}
}

// Fan-out CPU per delivery with join/leave webhooks on against off: the
// node's CPU for send_to_group rounds to 100 members while one member
// leaves and joins again per round (so the webhook has events to post).
func TestWebhookFanoutOverhead(t *testing.T) {
	r := newReceiver(t)
	n := startNode(t, map[string]string{"GOWS_LOG_LEVEL": "error", "GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false"})
	n.registerHook(t, "fanon", r, "join", "leave")
	n.register(t, "fanoff")
	const members, rounds = 100, 500
	measure := func(sys string) float64 {
		cs := make([]*wsClient, members)
		for i := range cs {
			cs[i] = n.dial(t, sys)
			n.bind(t, sys, cs[i].id, "g", "", "")
		}
		pid := n.cmd.Process.Pid
		before := cpuTicks(t, pid)
		for i := range rounds {
			churn := cs[i%members].id
			n.unbind(t, sys, churn, "g")
			n.bind(t, sys, churn, "g", "", "")
			n.ok(t, "send_to_group", sys, map[string]any{"groupName": "g", "data": i})
		}
		for _, c := range cs {
			for range rounds {
				if _, err := c.next(10 * time.Second); err != nil {
					t.Fatalf("%s: %v", sys, err)
				}
			}
		}
		us := float64(cpuTicks(t, pid)-before) * 1e4 / float64(members*rounds) // ticks are 10 ms
		for _, c := range cs {
			c.close()
		}
		return us
	}
	// Alternate and keep the lowest of each: other processes on the
	// machine only ever add CPU time.
	off, on := measure("fanoff"), measure("fanon")
	off, on = min(off, measure("fanoff")), min(on, measure("fanon"))
	r.waitFor(t, 10*time.Second, "every join and leave posted", func(evs []hookEvent) bool { return len(evs) >= 2*(members+2*rounds) })
	t.Logf("send_to_group to %d members with a leave and a join per round: node CPU %.2f µs per delivery with join/leave webhooks, %.2f µs without (%+.0f%%)",
		members, on, off, 100*(on-off)/off)
	if on > 1.5*off+1 {
		t.Errorf("join/leave webhooks cost %.2f µs per delivery against %.2f µs without", on, off)
	}
}
