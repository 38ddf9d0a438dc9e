package wstest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a tiny stand-in for a node: systemId "ok" gets a welcome then
// the frames of the query's "push" parameters and a close 4000; any other
// system gets one error frame and a close 4401; /api/websocket/echo answers
// an envelope.
func server(t *testing.T) *httptest.Server {
	up := websocket.Upgrader{Subprotocols: []string{"gows.v1"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/websocket/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if r.URL.Query().Get("systemId") != "ok" {
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"code":10005,"msg":"refused","data":{}}`))
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4401, "refused"))
			_, _, _ = c.ReadMessage()
			return
		}
		welcome := `{"code":0,"msg":"success","data":{"clientId":"abc_DEF-1"}}`
		if r.URL.Query().Get("resume") != "" {
			welcome = `{"code":0,"msg":"success","data":{"clientId":"abc_DEF-1","resumeToken":"tok","resumed":true}}`
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte(welcome))
		for _, p := range r.URL.Query()["push"] {
			_ = c.WriteMessage(websocket.TextMessage, []byte(p))
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"))
		_, _, _ = c.ReadMessage()
	})
	mux.HandleFunc("/api/websocket/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", JSONContentType)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 0, "msg": "success", "data": map[string]string{"systemId": r.Header.Get("systemId")}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestDialPushAndClose(t *testing.T) {
	srv := server(t)
	push := `{"messageId":"m1","sendUserId":"u","code":7,"msg":"hi","data":{"a":[1,2]}}`
	event := `{"messageId":"m2","sendUserId":"","code":1001,"msg":"join","data":{"clientId":"x","groupName":"g","userId":"u","extend":""},"ack":true,"seq":2}`
	c := MustDial(t, srv.URL, "ok", Options{Query: map[string][]string{"push": {push, event}}, Subprotocols: []string{"other", "gows.v1"}})
	if c.ID != "abc_DEF-1" || c.Welcome.Resumed != nil {
		t.Fatalf("welcome %+v", c.Welcome)
	}
	if got := c.Response.Header.Get("Sec-WebSocket-Protocol"); got != "gows.v1" {
		t.Errorf("subprotocol %q", got)
	}
	f := c.ExpectPush(t, 5*time.Second)
	if f.MessageID != "m1" || f.Code != 7 || string(f.Data) != `{"a":[1,2]}` || f.Seq != nil || f.Ack {
		t.Errorf("push %+v", f)
	}
	g := c.NextFrame(t, 5*time.Second)
	if g.Seq == nil || *g.Seq != 2 || !g.Ack || strings.Join(g.Keys, ",") != "messageId,sendUserId,code,msg,data,ack,seq" {
		t.Errorf("frame %+v", g)
	}
	CheckEvent(t, c.ID, g, 1001, MemberEvent{ClientID: "x", GroupName: "g", UserID: "u"})
	c.ExpectClose(t, 4000, 5*time.Second)
	if _, err := c.Next(10 * time.Millisecond); err == nil || err == ErrNoFrame {
		t.Errorf("Next after the end: %v, want the connection's end", err)
	}
}

func TestResumeWelcome(t *testing.T) {
	srv := server(t)
	c := MustDial(t, srv.URL, "ok", Options{Query: map[string][]string{"resume": {"tok"}, "lastSeq": {"3"}}})
	if c.Welcome.ResumeToken != "tok" || c.Welcome.Resumed == nil || !*c.Welcome.Resumed {
		t.Errorf("welcome %+v", c.Welcome)
	}
}

func TestRefusedAndRaw(t *testing.T) {
	srv := server(t)
	Refused(t, srv.URL, "nope", Options{}, 10005, 4401, "unknown system")
	if _, err := Dial(srv.URL, "nope", Options{}); err == nil {
		t.Error("Dial accepted an error frame as the welcome")
	}
	r, err := RawUpgrade(t, strings.TrimPrefix(srv.URL, "http://"), WSPath+"?systemId=ok&push=%7B%7D")
	if err != nil {
		t.Fatal(err)
	}
	if w, err := r.ReadWelcome(); err != nil || w.ClientID != "abc_DEF-1" {
		t.Fatalf("raw welcome %+v %v", w, err)
	}
	if err := r.Write(append(ClientFrame(0x80|OpPing, []byte("p"), true), ClientFrame(0x80|OpClose, []byte{0x03, 0xe8}, true)...)); err != nil {
		t.Fatal(err)
	}
	code, ended, after, _ := r.WaitEnd(5 * time.Second)
	if code != 4000 || !ended || after != 0 {
		t.Errorf("raw end: code %d ended %v after %d", code, ended, after)
	}
}

func TestAPIAndEventually(t *testing.T) {
	srv := server(t)
	a := &API{URL: srv.URL}
	var d struct {
		SystemID string `json:"systemId"`
	}
	Decode(t, a.OK(t, "echo", "s1", nil), &d)
	if d.SystemID != "s1" {
		t.Errorf("systemId header %q", d.SystemID)
	}
	r, err := a.Do(http.MethodPost, Prefix+"echo", nil, nil)
	if err != nil || CheckEnvelope(r) != nil {
		t.Errorf("%v %v", err, CheckEnvelope(r))
	}
	r.ContentType = "text/plain"
	if CheckEnvelope(r) == nil {
		t.Error("CheckEnvelope accepted text/plain")
	}
	n := 0
	if took := Eventually(t, time.Second, func() bool { n++; return n == 3 }, "three calls"); took <= 0 {
		t.Errorf("took %v", took)
	}
	if Poll(30*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a false condition")
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("# TYPE c counter\nc{a=\"1\",b=\"x\"} 2\nc{a=\"2\",b=\"x\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 4\nh_sum 1\nh_count 4\n"))
	}))
	defer srv.Close()
	m := MustScrape(t, srv.Client(), srv.URL)
	if m.Value("c") != 5 || m.Value("c", "a", "2") != 3 || m.Value("c", Labels(map[string]string{"a": "1", "b": "x"})...) != 2 ||
		m.Value("c", "a", "3") != 0 || m.Value("h") != 4 || m.Value("none") != 0 {
		t.Errorf("values of %s", m.Text)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("c{ 1\n")) }))
	defer bad.Close()
	if _, err := Scrape(bad.Client(), bad.URL); err == nil {
		t.Error("Scrape accepted a body that is not the text format")
	}
}
