package browser

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/go-websocket/go-websocket/define"
)

// exprClientID is the clientId the demo page shows, "" until it has one.
const exprClientID = `(() => { const t = document.getElementById('clientId').textContent.trim(); return t !== '—' ? t : ''; })()`

// waitClientID waits until the demo page is connected and returns its clientId.
func waitClientID(tb *tab) string {
	tb.t.Helper()
	id := wait[string](tb, "the clientId on the page", exprClientID)
	if len(id) < 16 || len(id) > 64 {
		tb.t.Fatalf("%s: the page shows clientId %q", tb.name, id)
	}
	return id
}

// checkGowsClient checks that the demo page loaded /gows.js and that its
// connection is a GowsClient, open, with the clientId the page shows.
func checkGowsClient(tb *tab, id string) {
	tb.t.Helper()
	if !eval[bool](tb, fmt.Sprintf(`(() => {
		const loaded = performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === '/gows.js');
		const c = window.GoWSDemo && window.GoWSDemo.client();
		return loaded && !!window.gows && c instanceof window.gows.GowsClient && c.state === 'open' && c.clientId === %s;
	})()`, js(id))) {
		tb.t.Errorf("%s: the page is not connected through a GowsClient of /gows.js with clientId %s", tb.name, id)
	}
}

// exprMessage finds a chat message by messageId and text; it returns the
// author shown, "" while absent.
func exprMessage(messageID, text string) string {
	return fmt.Sprintf(`(() => {
		for (const li of document.querySelectorAll('#log li.msg')) {
			if ((%s === '' || li.dataset.messageId === %s) && li.querySelector('.text') &&
			    li.querySelector('.text').textContent === %s) return li.querySelector('.who').textContent;
		}
		return '';
	})()`, js(messageID), js(messageID), js(text))
}

// exprEvent finds a membership event of a client; it returns its text.
func exprEvent(code int, clientID string) string {
	return fmt.Sprintf(`(() => {
		const li = document.querySelector('#log li.event[data-code="%d"][data-client-id=' + CSS.escape(%s) + ']');
		return li ? li.textContent : '';
	})()`, code, js(clientID))
}

// The demo page never registers a system: on an unknown one it says so and
// shows the curl command a backend runs. Once registered, it connects, shows
// its clientId, and shows a message pushed to that clientId through the API.
func TestDemoPageShowsPush(t *testing.T) {
	s := newStack(t, stackOpts{})
	p := openTab(t, "demo", s.url+"/")
	wait[bool](p, "the not-registered status", `document.getElementById('status').textContent === 'Not registered'`)
	cmd := wait[string](p, "the register command", `document.getElementById('registerHelp').open ? document.getElementById('registerCurl').textContent : ''`)
	if !strings.Contains(cmd, s.url+"/api/websocket/register") || !strings.Contains(cmd, `{"systemId":"demo"}`) {
		t.Errorf("the register command %q lacks the URL or the systemId", cmd)
	}
	if s.node.SystemExists("demo") {
		t.Fatal("the demo page registered its system")
	}
	p.screenshot("demo-not-registered")
	s.register("demo")
	p.do(chromedp.Click(chromedp.ID("connectBtn")))
	id := waitClientID(p)
	checkGowsClient(p, id)
	if got := eval[string](p, `document.getElementById('status').textContent`); got != "Connected" {
		t.Errorf("status pill = %q, want Connected", got)
	}
	if got := eval[string](p, `document.getElementById('apiMode').textContent`); !strings.Contains(got, "open: no token needed") {
		t.Errorf("the page does not say the API is open: %q", got)
	}

	text := "Order #1042 has shipped"
	var res struct {
		MessageID string `json:"messageId"`
	}
	s.ok("send_to_client", "demo", map[string]any{
		"clientId": id, "sendUserId": "shop-backend", "data": map[string]string{"text": text},
	}, &res)
	who := wait[string](p, "the pushed message in the log", exprMessage(res.MessageID, text))
	if who != "shop-backend" {
		t.Errorf("the message shows author %q, want shop-backend", who)
	}

	// Data that is not {"text"} is shown as JSON, untouched.
	s.ok("send_to_client", "demo", map[string]any{
		"clientId": id, "code": 7, "msg": "price", "data": json.RawMessage(`{"sku":"A-1","price":12.5}`),
	}, &res)
	wait[bool](p, "the JSON message", fmt.Sprintf(`(() => {
		const li = document.querySelector('#log li.msg[data-message-id=' + CSS.escape(%s) + ']');
		return !!li && li.dataset.code === '7' && li.querySelector('pre') !== null &&
			JSON.stringify(JSON.parse(li.querySelector('pre').textContent)) === '{"sku":"A-1","price":12.5}';
	})()`, js(res.MessageID)))

	// The page's own button goes through send_to_client too.
	p.do(chromedp.Click(chromedp.ID("pushSelf")))
	wait[bool](p, "the message the page pushed to itself", `(() => [...document.querySelectorAll('#log li.msg.direct')].some(li => li.textContent.includes('send_to_client')))()`)

	p.screenshot("demo-push")

	// close_client: the page says so and does not reconnect by itself.
	s.ok("close_client", "demo", map[string]string{"clientId": id}, nil)
	wait[bool](p, "the closed status", `document.getElementById('status').textContent === 'Closed by server' && document.getElementById('clientId').textContent === '—'`)
	if env, _ := s.call("is_online", "demo", map[string]string{"clientId": id}); !strings.Contains(string(env.Data), "false") {
		t.Errorf("is_online after close_client: %s", env.Data)
	}
	// Reconnect gives a new clientId.
	p.do(chromedp.Click(chromedp.ID("connectBtn")))
	id2 := waitClientID(p)
	if id2 == id {
		t.Error("the page reconnected with the old clientId")
	}
	checkGowsClient(p, id2)
}

// Two visitors in one group: each sees the other join (1001), the chat
// messages sent with send_to_group, the member count, and the leave (1002).
func TestDemoPageGroupChat(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.register("demo")
	alice := openTab(t, "alice", s.url+"/")
	aliceID := waitClientID(alice)
	alice.do(chromedp.SetValue(chromedp.ID("nickname"), "alice"), chromedp.Click(chromedp.ID("joinBtn")))
	wait[bool](alice, "alice in #lobby", `document.getElementById('room').textContent === '#lobby'`)
	wait[string](alice, "alice's own join event", exprEvent(define.MsgCodeJoin, aliceID))

	bob := openTab(t, "bob", s.url+"/")
	bobID := waitClientID(bob)
	if bobID == aliceID {
		t.Fatal("two tabs got the same clientId")
	}
	bob.do(chromedp.SetValue(chromedp.ID("nickname"), "bob"), chromedp.Click(chromedp.ID("joinBtn")))

	ev := wait[string](alice, "bob's join event (1001) on alice's page", exprEvent(define.MsgCodeJoin, bobID))
	if !strings.Contains(ev, "bob joined #lobby") {
		t.Errorf("alice sees the join as %q", ev)
	}
	wait[bool](alice, "2 members online", `document.getElementById('roomInfo').textContent === '2 members online'`)

	var list struct {
		Count int      `json:"count"`
		List  []string `json:"list"`
	}
	s.ok("get_online_list", "demo", map[string]string{"groupName": "lobby"}, &list)
	if list.Count != 2 {
		t.Errorf("get_online_list lobby = %+v, want alice and bob", list)
	}

	// bob writes through the page's composer (send_to_group).
	bob.typeInto("text", "Hi alice, bob here.")
	bob.do(chromedp.Click(chromedp.ID("sendBtn")))
	if who := wait[string](alice, "bob's message on alice's page", exprMessage("", "Hi alice, bob here.")); who != "bob" {
		t.Errorf("alice sees bob's message from %q", who)
	}
	wait[bool](bob, "bob's own message marked as his", `(() => [...document.querySelectorAll('#log li.msg.mine')].some(li => li.textContent.includes('Hi alice, bob here.')))()`)

	alice.typeInto("text", "Welcome, bob! How is the weather?")
	alice.do(chromedp.Click(chromedp.ID("sendBtn")))
	wait[string](bob, "alice's message on bob's page", exprMessage("", "Welcome, bob! How is the weather?"))

	// A backend message to the group reaches both.
	s.ok("send_to_group", "demo", map[string]any{"groupName": "lobby", "sendUserId": "weather-bot",
		"data": map[string]string{"text": "Sunny, 24 °C in Lisbon."}}, nil)
	wait[string](alice, "the bot's message on alice's page", exprMessage("", "Sunny, 24 °C in Lisbon."))
	wait[string](bob, "the bot's message on bob's page", exprMessage("", "Sunny, 24 °C in Lisbon."))

	bob.typeInto("text", "Sounds great, see you later.")
	bob.do(chromedp.Click(chromedp.ID("sendBtn")))
	wait[string](alice, "bob's second message", exprMessage("", "Sounds great, see you later."))
	alice.screenshot("demo-chat-alice")
	bob.screenshot("demo-chat-bob")

	bob.do(chromedp.Click(chromedp.ID("leaveBtn")))
	ev = wait[string](alice, "bob's leave event (1002) on alice's page", exprEvent(define.MsgCodeLeave, bobID))
	if !strings.Contains(ev, "bob left #lobby") {
		t.Errorf("alice sees the leave as %q", ev)
	}
	wait[bool](alice, "1 member online", `document.getElementById('roomInfo').textContent === '1 member online'`)
}

// The dashboard shows this node, its address, the connections per system,
// and follows them live: another client connecting moves the count without
// a reload; pushes give a message rate.
func TestDashboardIsLive(t *testing.T) {
	s := newStack(t, stackOpts{})
	d := openTab(t, "dashboard", s.url+"/dashboard")
	wait[bool](d, "the live pill", `document.getElementById('live').textContent === 'Live'`)
	if got := wait[string](d, "a connection count", `document.getElementById('totalConnections').textContent.replace('–', '')`); got != "0" {
		t.Fatalf("connections = %s before any client connected", got)
	}
	row := wait[string](d, "this node's row", `(() => { const r = document.querySelector('#nodes tr[data-node-id]'); return r ? r.textContent : ''; })()`)
	if !strings.Contains(row, s.addr) || !strings.Contains(row, s.node.ID().String()) || !strings.Contains(row, "this node") {
		t.Errorf("the node row %q lacks the address %s or the id %s", row, s.addr, s.node.ID())
	}
	// Mark the document: a reload would lose the mark.
	eval[bool](d, `(window.__noReload = true)`)

	s.register("shop")
	s.register("demo")
	for i := 0; i < 3; i++ {
		s.dial("shop")
	}
	wait[bool](d, "3 connections", `document.getElementById('totalConnections').textContent === '3'`)
	demo := openTab(t, "demo", s.url+"/")
	waitClientID(demo)
	wait[bool](d, "4 connections after the demo page connected", `document.getElementById('totalConnections').textContent === '4'`)
	wait[bool](d, "connections per system", `(() => {
		const row = (s) => { const r = document.querySelector('#systems tr[data-system="' + s + '"]'); return r ? r.lastChild.textContent : ''; };
		return row('shop') === '3' && row('demo') === '1';
	})()`)

	// Traffic for the rate: pushes to the shop system for a few polls.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 500; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			s.ok("send_to_system", "shop", map[string]any{"data": map[string]int{"n": i}}, nil)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	rate := wait[string](d, "a message rate above zero", `(() => { const t = document.getElementById('msgRate').textContent; return t !== '–' && parseFloat(t.replace(/,/g, '')) > 0 ? t : ''; })()`)
	t.Logf("dashboard message rate: %s/s", rate)
	wait[bool](d, "the sparkline", `document.querySelector('#spark polyline').getAttribute('points').split(' ').length >= 3`)

	if !eval[bool](d, `window.__noReload === true`) {
		t.Error("the dashboard reloaded the page to refresh")
	}
	d.screenshot("dashboard")
}

// With an API token configured the stats endpoint needs it; the dashboard
// never asks for it: without security.dashboardToken it says how to open it,
// with one the browser's own HTTP Basic login (answered here through the
// DevTools protocol, as a person would in the dialog) opens the page and the
// page's polls. The demo page does not ask for the API token either: it
// listens and shows the commands a backend runs.
func TestDashboardAndDemoWithToken(t *testing.T) {
	const token = "s3cret-api-token"
	const dashToken = "read-only-dashboard-password"
	s := newStack(t, stackOpts{token: token})

	env, err := s.api.Do(http.MethodGet, "/api/websocket/stats", nil, nil)
	if err != nil || env.Status != http.StatusUnauthorized || env.Code != define.CodeUnauthorized {
		t.Fatalf("stats without a token: %v %v, want 401 / 10005", env, err)
	}
	env, err = s.api.Do(http.MethodGet, "/api/websocket/stats", http.Header{"Authorization": {"Bearer " + token}}, nil)
	if err != nil || env.Status != http.StatusOK || env.Code != 0 {
		t.Fatalf("stats with the token: %v %v", env, err)
	}
	var st struct {
		Nodes []struct {
			NodeID   string `json:"nodeId"`
			HTTPAddr string `json:"httpAddr"`
		} `json:"nodes"`
		Unreachable []string `json:"unreachable"`
		Totals      struct {
			Nodes       int `json:"nodes"`
			Connections int `json:"connections"`
		} `json:"totals"`
	}
	if err := json.Unmarshal(env.Data, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].HTTPAddr != s.addr || st.Unreachable == nil || st.Totals.Nodes != 1 {
		t.Errorf("stats = %s", env.Data)
	}

	d := openTab(t, "dashboard-locked", s.url+"/dashboard")
	wait[bool](d, "the locked notice", `document.getElementById('live').textContent === 'Locked' && document.getElementById('alert').textContent.includes('dashboardToken')`)
	if n := eval[int](d, `document.querySelectorAll('input').length`); n != 0 {
		t.Errorf("the dashboard has %d input fields; it must not ask for a token", n)
	}
	d.screenshot("dashboard-locked")

	// The demo page in the same profile: connected, listening, no token field.
	s.register("demo")
	d.navigate(s.url + "/")
	if got := eval[string](d, `document.getElementById('apiMode').textContent`); !strings.Contains(got, "token required") {
		t.Errorf("the demo page does not say that the API needs a token: %q", got)
	}
	id := waitClientID(d)
	if n := eval[int](d, `document.querySelectorAll('input[type=password]').length`); n != 0 {
		t.Errorf("the demo page has %d password fields", n)
	}
	if !eval[bool](d, `document.getElementById('joinBtn').disabled && !document.getElementById('apiLocked').hidden`) {
		t.Error("with the API locked, the demo page still offers to call it")
	}
	if cmd := eval[string](d, `document.getElementById('curl').textContent`); !strings.Contains(cmd, "Authorization: Bearer $TOKEN") || !strings.Contains(cmd, id) {
		t.Errorf("the backend commands lack the token header or the clientId: %q", cmd)
	}
	// A backend joins it to a group: the page shows the event.
	s.ok("bind_to_group", "demo", map[string]string{"clientId": id, "groupName": "lobby"}, nil)
	wait[string](d, "the join event", exprEvent(define.MsgCodeJoin, id))

	// With a dashboard token: a fresh stack, a browser context that answers
	// the login dialog with it.
	s2 := newStack(t, stackOpts{token: token, dashboardToken: dashToken})
	bctx := needBrowser(t)
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	// The listener must not call into the browser: it hands the events to
	// goroutines that answer them.
	var logins atomic.Int32
	var answers sync.WaitGroup
	t.Cleanup(answers.Wait)
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *fetch.EventAuthRequired:
			logins.Add(1)
			answers.Go(func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{
					RequestID: e.RequestID,
					AuthChallengeResponse: &fetch.AuthChallengeResponse{
						Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: "ops", Password: dashToken,
					},
				})
			})
		case *fetch.EventRequestPaused:
			answers.Go(func() {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
			})
		}
	}); err != nil {
		t.Fatal(err)
	}
	handleAuth := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handleAuth}); err != nil {
		t.Fatal(err)
	}
	l := &tab{t: t, name: "dashboard-login", ctx: ctx}
	if err := chromedp.Listen(ctx, l.record); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.checkProblems)
	l.navigate(s2.url + "/dashboard")
	wait[bool](l, "the dashboard live with the dashboard token", `document.getElementById('live').textContent === 'Live' && document.getElementById('alert').classList.contains('hidden')`)
	if got := eval[string](l, `document.getElementById('overview').textContent`); got != "Node overview" {
		t.Errorf("a standalone node's dashboard says %q, want Node overview", got)
	}
	// Polls keep working with the credentials the browser keeps; the login
	// was asked for once.
	s2.register("shop")
	s2.dial("shop")
	wait[bool](l, "the new connection", `document.getElementById('totalConnections').textContent === '1'`)
	if n := logins.Load(); n != 1 {
		t.Errorf("the browser asked for the dashboard password %d times, want once", n)
	}
	if v := eval[string](l, `JSON.stringify(Object.assign({}, localStorage))`); strings.Contains(v, dashToken) || strings.Contains(v, token) {
		t.Errorf("localStorage holds a token: %s", v)
	}
	// The dashboard token opens nothing but the dashboard.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:"+dashToken))
	if env, err := s2.api.Do(http.MethodPost, "/api/websocket/register", http.Header{"Authorization": {basic}, "Content-Type": {"application/json"}},
		[]byte(`{"systemId":"x"}`)); err != nil || env.Status != http.StatusUnauthorized || env.Code != define.CodeUnauthorized {
		t.Errorf("register with the dashboard token: %v %v, want 401 / 10005", env, err)
	}
	l.screenshot("dashboard-login")
}

// Pages switched off are not served: 404 (a JSON error), and the other page
// hides its link to them.
func TestPagesSwitchedOff(t *testing.T) {
	s := newStack(t, stackOpts{noDemo: true})
	resp, err := httpClient.Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / with the demo page off: HTTP %d, want 404", resp.StatusCode)
	}
	d := openTab(t, "dashboard-without-demo", s.url+"/dashboard")
	wait[bool](d, "the live pill", `document.getElementById('live').textContent === 'Live'`)
	if !eval[bool](d, `document.getElementById('navDemo').hidden`) {
		t.Error("the dashboard links to the demo page that is off")
	}

	s2 := newStack(t, stackOpts{noDemo: true, noDashboard: true})
	for _, p := range []string{"/", "/dashboard", "/static/app.css"} {
		resp, err := httpClient.Get(s2.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s with both pages off: HTTP %d, want 404", p, resp.StatusCode)
		}
	}
	// What a browser sees there: the JSON error, no page.
	p := openTab(t, "pages-off", s2.url+"/dashboard")
	if txt := eval[string](p, `document.body.innerText`); !strings.Contains(txt, "no such endpoint") {
		t.Errorf("the browser shows %q at /dashboard with the dashboard off", txt)
	}
}

// The dashboard of a cluster: every node that answers, with its own
// connections per system, and the registered nodes that do not answer.
func TestDashboardCluster(t *testing.T) {
	a := newStack(t, stackOpts{cluster: true})
	b := newStack(t, stackOpts{cluster: true})
	// One cluster: the same secret (set by newStack), the same systems.
	cl := &fakeCluster{dead: []string{"0badc0ffee0ddf00d0000000dead0001"}}
	cl.attach(a.node)
	cl.attach(b.node)
	for _, sys := range []string{"shop", "chat"} {
		a.register(sys)
		b.register(sys)
	}
	for i := 0; i < 2; i++ {
		a.dial("shop")
	}
	for i := 0; i < 3; i++ {
		b.dial("shop")
	}
	b.dial("chat")

	d := openTab(t, "dashboard-cluster", a.url+"/dashboard")
	if got := eval[string](d, `document.getElementById('overview').textContent`); got != "Cluster overview" {
		t.Errorf("a cluster's dashboard says %q, want Cluster overview", got)
	}
	wait[bool](d, "two nodes and six connections", `document.getElementById('totalNodes').textContent === '2' && document.getElementById('totalConnections').textContent === '6'`)
	rows := eval[[]string](d, `[...document.querySelectorAll('#nodes tr[data-node-id]')].map(r => r.dataset.nodeId)`)
	if len(rows) != 2 || rows[0] != a.node.ID().String() || rows[1] != b.node.ID().String() {
		t.Errorf("node rows %v, want %s (this node) then %s", rows, a.node.ID(), b.node.ID())
	}
	perNode := eval[[]string](d, `[...document.querySelector('#systems tr[data-system="shop"]').children].slice(1).map(c => c.textContent)`)
	if strings.Join(perNode, ",") != "2,3,5" {
		t.Errorf("shop per node and total = %v, want 2,3,5", perNode)
	}
	un := eval[string](d, `document.getElementById('unreachable').textContent`)
	if !strings.Contains(un, cl.dead[0]) {
		t.Errorf("unreachable nodes show %q, want %s", un, cl.dead[0])
	}
	if sub := eval[string](d, `document.getElementById('nodesSub').textContent`); sub != "1 unreachable" {
		t.Errorf("nodes tile says %q", sub)
	}

	// A push through node a to a client of node b crosses the fake cluster
	// and shows up in b's pushed counter on a's dashboard.
	id := b.dial("chat").ID
	before := eval[string](d, `document.querySelectorAll('#nodes tr[data-node-id]')[1].children[6].textContent`)
	a.ok("send_to_client", "chat", map[string]any{"clientId": id, "data": "hello"}, nil)
	n, _ := strconv.Atoi(strings.ReplaceAll(before, ",", ""))
	wait[bool](d, "node b's pushed counter", fmt.Sprintf(`document.querySelectorAll('#nodes tr[data-node-id]')[1].children[6].textContent.replace(/,/g, '') === '%d'`, n+1))
	d.screenshot("dashboard-cluster")
}
