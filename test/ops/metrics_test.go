package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// ---------- /metrics ----------

// metrics scrapes the node's /metrics.
func (n *node) metrics() *wstest.Metrics {
	n.t.Helper()
	return wstest.MustScrape(n.t, httpClient, n.URL+"/metrics")
}

// series names one time series for the table of expectations.
type series struct {
	name   string
	labels []string
}

func (s series) String() string {
	if len(s.labels) == 0 {
		return s.name
	}
	var b strings.Builder
	for i := 0; i+1 < len(s.labels); i += 2 {
		if b.Len() > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%q", s.labels[i], s.labels[i+1])
	}
	return s.name + "{" + b.String() + "}"
}

// ---------- the test ----------

// TestMetricsMoveByTheTraffic sends known traffic to a node and checks that
// every counter of /metrics moved by exactly that much.
func TestMetricsMoveByTheTraffic(t *testing.T) {
	const queueLength = 8
	n := startNode(t, map[string]string{
		"GOWS_WEBSOCKET_QUEUELENGTH": fmt.Sprint(queueLength),
	})
	before := n.metrics()

	const sys = "ops"
	const (
		N = 5 // clients
		K = 4 // send_to_client to one of them
		M = 3 // members of the group
	)
	pushed := 0
	scCalls := 0 // every send_to_client call, for the latency histogram

	// register, and a second time: 10004 (an API error).
	n.must("register", "", map[string]string{"systemId": sys})
	if env := n.call("register", "", map[string]string{"systemId": sys}); env.Code != 10004 {
		t.Fatalf("second register: code %d, want 10004", env.Code)
	}

	// A refused connect: an unknown system.
	if c, err := wstest.Dial(n.URL, "nobody", wstest.Options{NoWelcome: true}); err == nil {
		_, _, _ = c.Drain(5 * time.Second)
		c.Abort()
	}

	clients := make([]*wstest.Client, N)
	for i := range clients {
		clients[i] = n.dial(sys)
	}
	ids := map[string]bool{}
	for _, c := range clients {
		ids[c.ID] = true
	}

	// K unicasts to client 0.
	for i := 0; i < K; i++ {
		n.must("send_to_client", sys, map[string]any{"clientId": clients[0].ID, "data": map[string]int{"i": i}})
		scCalls++
	}
	pushed += K

	// M clients join a group: the i-th join reaches i members (1001 events).
	for i := 1; i <= M; i++ {
		n.must("bind_to_group", sys, map[string]string{"clientId": clients[i].ID, "groupName": "room", "userId": fmt.Sprint("u", i)})
		pushed += i
	}
	// One message to the group of M.
	var gr struct {
		Recipients int `json:"recipients"`
	}
	data := n.must("send_to_group", sys, map[string]any{"groupName": "room", "data": "hello room"})
	if err := json.Unmarshal(data, &gr); err != nil || gr.Recipients != M {
		t.Fatalf("send_to_group: %s (%v), want %d recipients", data, err, M)
	}
	pushed += M

	// close_client on a member: it is kicked; the other M-1 get a 1002.
	n.must("close_client", sys, map[string]string{"clientId": clients[M].ID})
	pushed += M - 1

	// Client N-1 (in no group) closes by itself: a normal disconnect.
	last := clients[N-1]
	_ = last.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	select {
	case <-last.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not answer the client's close")
	}

	// API errors: an unknown client (10006), no systemId (10002), malformed JSON (10001).
	if env := n.call("send_to_client", sys, map[string]any{"clientId": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "data": 1}); env.Code != 10006 {
		t.Fatalf("send_to_client to an unknown client: code %d", env.Code)
	}
	scCalls++
	if env := n.call("send_to_group", "", map[string]any{"groupName": "room", "data": 1}); env.Code != 10002 {
		t.Fatalf("send_to_group without systemId: code %d", env.Code)
	}
	if env := n.call("send_to_client", sys, []byte(`{"clientId": `)); env.Code != 10001 {
		t.Fatalf("malformed JSON: code %d", env.Code)
	}
	scCalls++

	// A slow consumer: a client with a tiny receive buffer that stops
	// reading. Large pushes fill the sockets, then the queue of
	// queueLength frames; the next push closes it with 1008 and answers 10006.
	slowDialer := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
				if err != nil {
					return err
				}
				return serr
			}}
			return d.Dial(network, addr)
		},
	}
	slow := wstest.MustDial(t, n.URL, sys, wstest.Options{Dialer: &slowDialer, NoReader: true})
	ids[slow.ID] = true
	big, _ := json.Marshal(map[string]any{"clientId": slow.ID, "data": strings.Repeat("x", 256<<10)})
	slowOK, overflowed := 0, false
	for i := 0; i < 400; i++ {
		env := n.call("send_to_client", sys, big)
		scCalls++
		if env.Code == 10006 {
			overflowed = true
			break
		}
		if env.Code != 0 {
			t.Fatalf("push to the slow client: code %d %s", env.Code, env.Msg)
		}
		slowOK++
	}
	if !overflowed {
		t.Fatal("400 pushes of 256 KiB to a client that does not read never overflowed its queue")
	}
	pushed += slowOK
	t.Logf("the slow client took %d pushes of 256 KiB before it was closed", slowOK)

	// The expected deltas.
	want := []struct {
		s     series
		delta float64
	}{
		{series{"gows_connects_total", nil}, N + 1},
		{series{"gows_connections", []string{"system", sys}}, N + 1 - 3}, // kicked, closed, slow
		{series{"gows_disconnects_total", []string{"reason", "kicked"}}, 1},
		{series{"gows_disconnects_total", []string{"reason", "normal"}}, 1},
		{series{"gows_disconnects_total", []string{"reason", "slow_consumer"}}, 1},
		{series{"gows_connects_refused_total", []string{"reason", "unknown_system"}}, 1},
		{series{"gows_messages_pushed_total", nil}, float64(pushed)},
		{series{"gows_messages_dropped_total", nil}, 1}, // the push that overflowed
		{series{"gows_slow_consumer_closes_total", nil}, 1},
		{series{"gows_api_requests_total", []string{"endpoint", "register", "code", "0"}}, 1},
		{series{"gows_api_requests_total", []string{"endpoint", "register", "code", "10004"}}, 1},
		{series{"gows_api_requests_total", []string{"endpoint", "send_to_client", "code", "0"}}, float64(K + slowOK)},
		{series{"gows_api_requests_total", []string{"endpoint", "send_to_client", "code", "10006"}}, 2},
		{series{"gows_api_requests_total", []string{"endpoint", "send_to_client", "code", "10001"}}, 1},
		{series{"gows_api_requests_total", []string{"endpoint", "bind_to_group", "code", "0"}}, M},
		{series{"gows_api_requests_total", []string{"endpoint", "send_to_group", "code", "0"}}, 1},
		{series{"gows_api_requests_total", []string{"endpoint", "send_to_group", "code", "10002"}}, 1},
		{series{"gows_api_requests_total", []string{"endpoint", "close_client", "code", "0"}}, 1},
		{series{"gows_api_request_duration_seconds", []string{"endpoint", "send_to_client"}}, float64(scCalls)},
		{series{"gows_api_request_duration_seconds", []string{"endpoint", "bind_to_group"}}, M},
	}
	// Disconnects finish on the server's goroutines: wait until every series
	// has reached its value, then check none went past it.
	var after *wstest.Metrics
	mismatch := func() []string {
		after = n.metrics()
		var bad []string
		for _, w := range want {
			got := after.Value(w.s.name, w.s.labels...) - before.Value(w.s.name, w.s.labels...)
			if got != w.delta {
				bad = append(bad, fmt.Sprintf("%s moved by %v, want %v", w.s, got, w.delta))
			}
		}
		return bad
	}
	var bad []string
	for i := 0; i < 100; i++ {
		if bad = mismatch(); len(bad) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // nothing may move after the traffic stopped
	if bad = mismatch(); len(bad) > 0 {
		t.Errorf("metrics after the traffic:\n  %s", strings.Join(bad, "\n  "))
	}

	// The clients saw what the counters say: client 0 its K messages; group
	// members the joins from their own on, the group message, and one 1002.
	for i, want := range map[int]int{0: K, 1: M + 1 + 1, 2: (M - 1) + 1 + 1} {
		got := 0
		for j := 0; j < 100; j++ {
			if got = clients[i].Pending(); got >= want {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got != want {
			t.Errorf("client %d received %d frames, want %d", i, got, want)
		}
	}

	checkLabels(t, after, ids)
}

// checkLabels asserts that no series carries a clientId (or anything shaped
// like one) in a label: the cardinality of /metrics must not grow with
// connections.
func checkLabels(t *testing.T, m *wstest.Metrics, ids map[string]bool) {
	t.Helper()
	idLike := regexp.MustCompile(`^[A-Za-z0-9_-]{20,}$`)
	names := make([]string, 0, len(m.Families))
	for name := range m.Families {
		names = append(names, name)
	}
	sort.Strings(names)
	systems := map[string]bool{}
	for _, name := range names {
		for _, series := range m.Families[name].Metric {
			for _, l := range series.Label {
				if strings.Contains(strings.ToLower(l.GetName()), "client") {
					t.Errorf("%s has a label named %s", name, l.GetName())
				}
				if ids[l.GetValue()] {
					t.Errorf("%s{%s=%q} carries a clientId", name, l.GetName(), l.GetValue())
				} else if idLike.MatchString(l.GetValue()) {
					t.Errorf("%s{%s=%q} carries an id-like value", name, l.GetName(), l.GetValue())
				}
				if strings.HasPrefix(name, "gows_") && l.GetName() == "system" {
					systems[l.GetValue()] = true
				}
			}
		}
	}
	if len(systems) != 1 || !systems["ops"] {
		t.Errorf("system labels %v, want only ops", systems)
	}
}

// TestBinaryServesPagesAndStats checks the wiring of the web pages in the
// real binary (main.go's routers Extra hook) and that the dashboard's stats
// agree with /metrics.
func TestBinaryServesPagesAndStats(t *testing.T) {
	const wiring = "main.go must wire the pages: routers.Options{..., Extra: func(e *gin.Engine, protect gin.HandlerFunc) " +
		"{ web.Register(e, protect, node, len(cfg.Security.APITokens) == 0) }}"
	n := startNode(t, nil)
	for path, ctype := range map[string]string{"/": "text/html", "/dashboard": "text/html", "/static/demo.js": "text/javascript"} {
		resp, err := httpClient.Get(n.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Fatalf("GET %s: HTTP %d %s\n%s", path, resp.StatusCode, resp.Header.Get("Content-Type"), wiring)
		}
		if path == "/" && !bytes.Contains(b, []byte(`<meta name="gows-api-open" content="true">`)) {
			t.Errorf("GET /: the page does not say that the API is open (no apiTokens)")
		}
	}

	n.must("register", "", map[string]string{"systemId": "shop"})
	a, b := n.dial("shop"), n.dial("shop")
	for i := 0; i < 3; i++ {
		n.must("send_to_client", "shop", map[string]any{"clientId": a.ID, "data": i})
	}
	n.must("send_to_client", "shop", map[string]any{"clientId": b.ID, "data": "x"})

	var st struct {
		Nodes []struct {
			HTTPAddr       string         `json:"httpAddr"`
			Connections    int            `json:"connections"`
			Systems        map[string]int `json:"systems"`
			MessagesPushed float64        `json:"messagesPushed"`
		} `json:"nodes"`
		Unreachable []string `json:"unreachable"`
		Totals      struct {
			Nodes              int            `json:"nodes"`
			Connections        int            `json:"connections"`
			Systems            map[string]int `json:"systems"`
			MessagesPushed     float64        `json:"messagesPushed"`
			SlowConsumerCloses float64        `json:"slowConsumerCloses"`
		} `json:"totals"`
	}
	env, err := n.api.Do(http.MethodGet, "/api/websocket/stats", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := wstest.CheckEnvelope(env); err != nil || env.Code != 0 {
		t.Fatalf("GET /api/websocket/stats: HTTP %d code %d %v\n%s", env.Status, env.Code, err, wiring)
	}
	if err := json.Unmarshal(env.Data, &st); err != nil {
		t.Fatal(err)
	}
	m := n.metrics()
	if len(st.Nodes) != 1 || st.Nodes[0].HTTPAddr != strings.TrimPrefix(n.URL, "http://") || st.Unreachable == nil {
		t.Errorf("stats nodes %+v unreachable %v", st.Nodes, st.Unreachable)
	}
	if st.Totals.Nodes != 1 || st.Totals.Connections != 2 || st.Totals.Systems["shop"] != 2 ||
		float64(st.Totals.Connections) != m.Value("gows_connections", "system", "shop") {
		t.Errorf("stats totals %+v, /metrics connections %v", st.Totals, m.Value("gows_connections", "system", "shop"))
	}
	if st.Totals.MessagesPushed != 4 || st.Totals.MessagesPushed != m.Value("gows_messages_pushed_total") ||
		st.Totals.SlowConsumerCloses != m.Value("gows_slow_consumer_closes_total") {
		t.Errorf("stats pushed %v slow %v; /metrics pushed %v slow %v", st.Totals.MessagesPushed, st.Totals.SlowConsumerCloses,
			m.Value("gows_messages_pushed_total"), m.Value("gows_slow_consumer_closes_total"))
	}

	// With an API token the stats need it, like the API; the pages stay public.
	const token = "ops-token-1234567890"
	p := startNode(t, map[string]string{"GOWS_SECURITY_APITOKENS": token})
	if env, err = p.api.Do(http.MethodGet, "/api/websocket/stats", nil, nil); err != nil {
		t.Fatal(err)
	}
	if env.Status != http.StatusUnauthorized || env.Code != 10005 {
		t.Errorf("stats without the token: HTTP %d code %d, want 401 / 10005", env.Status, env.Code)
	}
	if env, err = p.api.Do(http.MethodGet, "/api/websocket/stats", http.Header{"Authorization": {"Bearer " + token}}, nil); err != nil {
		t.Fatal(err)
	}
	if env.Status != http.StatusOK || env.Code != 0 {
		t.Errorf("stats with the token: HTTP %d code %d", env.Status, env.Code)
	}
	resp, err := httpClient.Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(`<meta name="gows-api-open" content="false">`)) {
		t.Errorf("GET / with a token configured: HTTP %d, the page must say the API needs a token", resp.StatusCode)
	}
}
