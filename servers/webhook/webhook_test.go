package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/go-websocket/go-websocket/servers/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"events":[]}`)
	sig := Sign("k", 1700000000, body)
	const wantSig = "fad0a6560c224a5548753bbe9e8efb895a7c85585fc2fc2428fc5c1579a9c1c8"
	// printf '%s' '1700000000.{"events":[]}' | openssl dgst -sha256 -hmac k
	if sig != "sha256="+wantSig {
		t.Fatalf("signature %q", sig)
	}
	if !Verify("k", "1700000000", sig, body, 0) {
		t.Fatal("own signature does not verify")
	}
	for _, bad := range []struct{ secret, ts, sig, body string }{
		{"x", "1700000000", sig, string(body)},
		{"k", "1700000001", sig, string(body)},
		{"k", "1700000000", sig, `{"events":[1]}`},
		{"k", "nope", sig, string(body)},
	} {
		if Verify(bad.secret, bad.ts, bad.sig, []byte(bad.body), 0) {
			t.Errorf("verified %+v", bad)
		}
	}
	now := time.Now().Unix()
	if Verify("k", strconv.FormatInt(now-600, 10), Sign("k", now-600, body), body, 5*time.Minute) {
		t.Error("a 10-minute-old timestamp passed a 5-minute window")
	}
}

func TestCheckURLAndEvents(t *testing.T) {
	for _, c := range []struct {
		url   string
		allow []string
		ok    bool
	}{
		{"", nil, true},
		{"http://127.0.0.1:8080/h", nil, true},
		{"https://hooks.example.com/x", []string{".example.com"}, true},
		{"https://example.com/x", []string{"example.com"}, true},
		{"https://evil.com/x", []string{".example.com", "example.com"}, false},
		{"ftp://example.com/x", nil, false},
		{"http:///x", nil, false},
		{"http://user:pw@example.com/", nil, false},
		{"not a url", nil, false},
	} {
		if err := CheckURL(c.url, c.allow); (err == nil) != c.ok {
			t.Errorf("CheckURL(%q, %v) = %v", c.url, c.allow, err)
		}
	}
	if CheckEvents([]string{"connect", "message"}) != nil || CheckEvents([]string{"connects"}) == nil {
		t.Error("CheckEvents")
	}
}

// sink is a receiver that records the batches it accepts; fail makes it
// answer 500 to the next n POSTs.
type sink struct {
	mu      sync.Mutex
	batches [][]Event
	fail    int
	tries   int
	secret  string
	badSig  int
	got     chan struct{}
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	if !Verify(s.secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Minute) {
		s.badSig++
	}
	if s.fail > 0 {
		s.fail--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var p Payload
	_ = json.Unmarshal(body, &p)
	s.batches = append(s.batches, p.Events)
	select {
	case s.got <- struct{}{}:
	default:
	}
}

func (s *sink) events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

func (s *sink) wait(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if evs := s.events(); len(evs) >= n {
			return evs
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("%d events, want %d", len(s.events()), n)
		}
	}
}

func newDispatcher(t *testing.T, cfg Config, set store.Settings) (*Dispatcher, *sink, *prometheus.Registry) {
	s := &sink{secret: set.WebhookSecret, got: make(chan struct{}, 1)}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	set.WebhookURL = srv.URL
	reg := prometheus.NewRegistry()
	d := New(cfg, func(context.Context, string) (store.Settings, bool, error) { return set, true, nil }, reg, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return d, s, reg
}

func TestBatchesInOrderSignedAndFiltered(t *testing.T) {
	d, s, reg := newDispatcher(t, Config{}, store.Settings{WebhookSecret: "sec", WebhookEvents: []string{EventConnect, EventMessage}})
	const n = 250
	for i := range n {
		d.Publish(Event{Type: EventConnect, SystemID: "s", ClientID: strconv.Itoa(i)})
		d.Publish(Event{Type: EventJoin, SystemID: "s", ClientID: strconv.Itoa(i), GroupName: "g"}) // not subscribed
	}
	evs := s.wait(t, n)
	for i, ev := range evs {
		if ev.Type != EventConnect || ev.ClientID != strconv.Itoa(i) || ev.ID == "" || ev.Time == 0 {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	s.mu.Lock()
	for _, b := range s.batches {
		if len(b) > 100 {
			t.Errorf("a batch of %d events", len(b))
		}
	}
	bad := s.badSig
	s.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d bad signatures", bad)
	}
	// The metric counts once the POST's answer is read.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(d.posted.WithLabelValues("s")) != n {
		if time.Now().After(deadline) {
			t.Fatalf("posted metric %v, want %d", testutil.ToFloat64(d.posted.WithLabelValues("s")), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d.Wants("s", EventJoin) || !d.Wants("s", EventMessage) || !d.Wants("other", EventJoin) {
		t.Fatal("Wants")
	}
	if c, err := testutil.GatherAndCount(reg, "gows_webhook_posted_total"); err != nil || c != 1 {
		t.Fatalf("registry: %d series, %v", c, err)
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	d, s, _ := newDispatcher(t, Config{MaxBackoff: 50 * time.Millisecond}, store.Settings{WebhookSecret: "k", WebhookEvents: Events})
	s.mu.Lock()
	s.fail = 4
	s.mu.Unlock()
	d.Publish(Event{Type: EventDisconnect, SystemID: "s", ClientID: "c", Reason: ReasonHeartbeat})
	evs := s.wait(t, 1)
	if evs[0].Reason != ReasonHeartbeat {
		t.Fatalf("%+v", evs[0])
	}
	if got := testutil.ToFloat64(d.retried.WithLabelValues("s")); got != 4 {
		t.Fatalf("retried %v, want 4", got)
	}
}

func TestGivesUpAfterRetryWindow(t *testing.T) {
	d, s, _ := newDispatcher(t, Config{RetryFor: 300 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		store.Settings{WebhookSecret: "k", WebhookEvents: Events})
	s.mu.Lock()
	s.fail = 1 << 30
	s.mu.Unlock()
	d.Publish(Event{Type: EventConnect, SystemID: "s", ClientID: "c"})
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(d.dropped.WithLabelValues("s", "expired")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the batch was not dropped after the retry window")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQueueDropsOldest(t *testing.T) {
	d, s, _ := newDispatcher(t, Config{QueueSize: 10, MaxBackoff: 20 * time.Millisecond},
		store.Settings{WebhookSecret: "k", WebhookEvents: Events})
	s.mu.Lock()
	s.fail = 1 << 30
	s.mu.Unlock()
	d.Publish(Event{Type: EventConnect, SystemID: "s", ClientID: "first"})
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(d.retried.WithLabelValues("s")) < 1 { // the first batch is in flight
		if time.Now().After(deadline) {
			t.Fatal("no retry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 25 {
		d.Publish(Event{Type: EventConnect, SystemID: "s", ClientID: strconv.Itoa(i)})
	}
	if got := testutil.ToFloat64(d.dropped.WithLabelValues("s", "queue_full")); got != 15 {
		t.Fatalf("dropped %v, want 15", got)
	}
	s.mu.Lock()
	s.fail = 0
	s.mu.Unlock()
	evs := s.wait(t, 11)
	if evs[0].ClientID != "first" || evs[1].ClientID != "15" || evs[10].ClientID != "24" {
		t.Fatalf("delivered %v..., want first, then 15..24", evs[:2])
	}
}

func TestUpstreamRate(t *testing.T) {
	d, _, _ := newDispatcher(t, Config{UpstreamRate: 1, UpstreamBurst: 3}, store.Settings{})
	for i := range 3 {
		if !d.AllowUpstream("c") {
			t.Fatalf("message %d refused within the burst", i)
		}
	}
	if d.AllowUpstream("c") {
		t.Fatal("4th message within a second allowed")
	}
	d.Forget("c")
	if !d.AllowUpstream("c") {
		t.Fatal("a forgotten client starts with a full bucket")
	}
}
