package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// ---------------------------------------------------------------- HTTP API

// Path sets: the main one and the legacy one of woodylan/go-websocket.
const (
	mainPrefix   = "/api/websocket/"
	legacyPrefix = "/api/"
	mainWSPath   = "/api/websocket/ws"
	legacyWSPath = "/ws"
)

// apiEndpoints are every POST endpoint of SPEC section 2.
var apiEndpoints = []string{
	"register", "send_to_client", "send_to_clients", "bind_to_group", "unbind_from_group",
	"send_to_group", "send_to_system", "get_online_list", "is_online", "close_client",
}

// statusOfCode is SPEC section 5.
var statusOfCode = map[int]int{
	0:     200,
	10001: 400, 10002: 400, 10003: 404, 10004: 409, 10005: 401, 10006: 404,
	10007: 413, 10008: 405, 10009: 503, 10010: 429, 10011: 500, 10012: 403,
}

const jsonContentType = "application/json; charset=utf-8"

// apiResp is one HTTP answer of the node.
type apiResp struct {
	Method, Path string
	Status       int
	ContentType  string
	Body         []byte
	Code         int
	Msg          string
	Data         json.RawMessage
}

func (r *apiResp) String() string {
	b := r.Body
	if len(b) > 300 {
		b = append(append([]byte{}, b[:300]...), "..."...)
	}
	return fmt.Sprintf("%s %s -> HTTP %d %q %s", r.Method, r.Path, r.Status, r.ContentType, b)
}

// checkEnvelope verifies what every API answer must be (SPEC 2 and 5): JSON
// with the right Content-Type, never empty, an envelope {code,msg,data} whose
// code is from the table and whose HTTP status matches it, never a 500.
func checkEnvelope(r *apiResp) error {
	var problems []string
	if r.ContentType != jsonContentType {
		problems = append(problems, fmt.Sprintf("Content-Type %q, want %q", r.ContentType, jsonContentType))
	}
	if r.Status >= 500 {
		problems = append(problems, fmt.Sprintf("HTTP status %d (5xx)", r.Status))
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		problems = append(problems, "empty body")
	} else {
		var env map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &env); err != nil {
			problems = append(problems, "body is not a JSON object: "+err.Error())
		} else {
			for _, k := range []string{"code", "msg", "data"} {
				if _, ok := env[k]; !ok {
					problems = append(problems, "envelope has no "+k)
				}
			}
			if err := json.Unmarshal(env["code"], &r.Code); err != nil {
				problems = append(problems, "code is not an integer: "+string(env["code"]))
			}
			if err := json.Unmarshal(env["msg"], &r.Msg); err != nil {
				problems = append(problems, "msg is not a string: "+string(env["msg"]))
			}
			r.Data = env["data"]
			if want, ok := statusOfCode[r.Code]; !ok {
				problems = append(problems, fmt.Sprintf("code %d is not in SPEC section 5", r.Code))
			} else if want != r.Status {
				problems = append(problems, fmt.Sprintf("code %d goes with HTTP %d, got HTTP %d", r.Code, want, r.Status))
			}
			if r.Code != 0 && strings.TrimSpace(r.Msg) == "" {
				problems = append(problems, "error without a msg")
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", r, strings.Join(problems, "; "))
	}
	return nil
}

// rawRequest sends one request; headers are set exactly as given (case kept).
// It does not check the answer.
func (n *node) rawRequest(method, path string, headers map[string]string, body []byte) (*apiResp, error) {
	req, err := http.NewRequest(method, n.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if _, ok := headers["Content-Type"]; !ok && body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header[k] = []string{v}
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return &apiResp{Method: method, Path: path, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
}

// do sends a request and checks the envelope; safe from any goroutine.
func (n *node) do(method, path string, headers map[string]string, body []byte) (*apiResp, error) {
	r, err := n.rawRequest(method, path, headers, body)
	if err != nil {
		return nil, err
	}
	if err := checkEnvelope(r); err != nil {
		return r, err
	}
	return r, checkSpec(r)
}

func bodyBytes(body any) []byte {
	switch b := body.(type) {
	case nil:
		return []byte("{}")
	case string:
		return []byte(b)
	case []byte:
		return b
	default:
		out, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		return out
	}
}

func sysHeader(systemID string) map[string]string {
	if systemID == "" {
		return map[string]string{}
	}
	return map[string]string{"systemId": systemID}
}

// postAt POSTs body (string/[]byte as is, anything else JSON-encoded) to
// prefix+name with the systemId header (none when systemID is ""). Transport
// errors are fatal; envelope problems are reported with t.Errorf.
func (n *node) postAt(t testing.TB, prefix, name, systemID string, body any) *apiResp {
	t.Helper()
	r, err := n.do(http.MethodPost, prefix+name, sysHeader(systemID), bodyBytes(body))
	if r == nil {
		t.Fatalf("%v", err)
	}
	if err != nil {
		t.Errorf("%v", err)
	}
	return r
}

func (n *node) post(t testing.TB, name, systemID string, body any) *apiResp {
	t.Helper()
	return n.postAt(t, mainPrefix, name, systemID, body)
}

// ok POSTs and requires code 0, HTTP 200; it returns data.
func (n *node) ok(t testing.TB, name, systemID string, body any) json.RawMessage {
	t.Helper()
	r := n.post(t, name, systemID, body)
	if r.Code != 0 || r.Status != 200 {
		t.Fatalf("%s: want code 0 / HTTP 200", r)
	}
	return r.Data
}

// fail POSTs and requires the error code (and its HTTP status).
func (n *node) failAt(t testing.TB, prefix, name, systemID string, body any, code int) *apiResp {
	t.Helper()
	r := n.postAt(t, prefix, name, systemID, body)
	if r.Code != code || r.Status != statusOfCode[code] {
		t.Errorf("%s: want code %d / HTTP %d", r, code, statusOfCode[code])
	}
	return r
}

func (n *node) fail(t testing.TB, name, systemID string, body any, code int) *apiResp {
	t.Helper()
	return n.failAt(t, mainPrefix, name, systemID, body, code)
}

func mustUnmarshal(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s into %T: %v", raw, v, err)
	}
}

func (n *node) register(t testing.TB, systemID string) {
	t.Helper()
	data := n.ok(t, "register", "", map[string]any{"systemId": systemID})
	var d struct {
		SystemID string `json:"systemId"`
	}
	mustUnmarshal(t, data, &d)
	if d.SystemID != systemID {
		t.Fatalf("register %q answered data %s", systemID, data)
	}
}

type msgResult struct {
	MessageID  string          `json:"messageId"`
	Delivered  *int            `json:"delivered"`
	Offline    json.RawMessage `json:"offline"`
	Recipients *int            `json:"recipients"`
}

func checkMessageID(t testing.TB, id string) {
	t.Helper()
	if id == "" || len(id) > 32 {
		t.Errorf("messageId %q: want 1-32 characters", id)
	}
}

// sendToClient sends data (raw JSON, "" for none) and returns the messageId.
func (n *node) sendToClient(t testing.TB, systemID, clientID string, data string) string {
	t.Helper()
	body := `{"clientId":` + jsonStr(clientID) + `,"sendUserId":"u1","code":7,"msg":"hi"`
	if data != "" {
		body += `,"data":` + data
	}
	body += `}`
	var res msgResult
	mustUnmarshal(t, n.ok(t, "send_to_client", systemID, body), &res)
	checkMessageID(t, res.MessageID)
	return res.MessageID
}

// sendToGroup sends data (raw JSON) and returns messageId and recipients.
func (n *node) sendToGroup(t testing.TB, systemID, group, data string) (string, int) {
	t.Helper()
	body := `{"groupName":` + jsonStr(group) + `,"sendUserId":"g1","code":3,"msg":"group","data":` + data + `}`
	var res msgResult
	mustUnmarshal(t, n.ok(t, "send_to_group", systemID, body), &res)
	checkMessageID(t, res.MessageID)
	if res.Recipients == nil {
		t.Fatalf("send_to_group answered no recipients")
	}
	return res.MessageID, *res.Recipients
}

func (n *node) bind(t testing.TB, systemID, clientID, group, userID, extend string) {
	t.Helper()
	data := n.ok(t, "bind_to_group", systemID, map[string]any{
		"clientId": clientID, "groupName": group, "sendUserId": "admin", "userId": userID, "extend": extend,
	})
	if string(bytes.TrimSpace(data)) != "{}" {
		t.Errorf("bind_to_group data %s, want {}", data)
	}
}

func (n *node) unbind(t testing.TB, systemID, clientID, group string) {
	t.Helper()
	data := n.ok(t, "unbind_from_group", systemID, map[string]any{"clientId": clientID, "groupName": group})
	if string(bytes.TrimSpace(data)) != "{}" {
		t.Errorf("unbind_from_group data %s, want {}", data)
	}
}

func (n *node) isOnline(t testing.TB, systemID, clientID string) bool {
	t.Helper()
	var d struct {
		Online *bool `json:"online"`
	}
	mustUnmarshal(t, n.ok(t, "is_online", systemID, map[string]any{"clientId": clientID}), &d)
	if d.Online == nil {
		t.Fatalf("is_online answered no online field")
	}
	return *d.Online
}

// onlineList returns count and list of get_online_list (group "" = system);
// it requires list to be a JSON array and count to equal its length.
func (n *node) onlineList(t testing.TB, systemID, group string) (int, []string) {
	t.Helper()
	body := map[string]any{}
	if group != "" {
		body["groupName"] = group
	}
	data := n.ok(t, "get_online_list", systemID, body)
	var d struct {
		Count *int            `json:"count"`
		List  json.RawMessage `json:"list"`
	}
	mustUnmarshal(t, data, &d)
	if d.Count == nil {
		t.Fatalf("get_online_list: no count in %s", data)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(d.List), []byte("[")) {
		t.Fatalf("get_online_list: list is not an array: %s", data)
	}
	var list []string
	mustUnmarshal(t, d.List, &list)
	if *d.Count != len(list) {
		t.Errorf("get_online_list: count %d but %d ids in list", *d.Count, len(list))
	}
	return *d.Count, list
}

// waitOffline polls is_online until false (bounded).
func (n *node) waitOffline(t testing.TB, systemID, clientID string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for i := 0; i < 10000; i++ {
		if !n.isOnline(t, systemID, clientID) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("client %s still online after %v", clientID, within)
}

// waitOnlineSet polls get_online_list until its list is exactly want.
func (n *node) waitOnlineSet(t testing.TB, systemID, group string, want []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var got []string
	for i := 0; i < 10000; i++ {
		_, got = n.onlineList(t, systemID, group)
		if sameSet(got, want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("get_online_list(%q, group %q) = %d ids, want %d; missing %v, extra %v",
		systemID, group, len(got), len(want), minus(want, got, 10), minus(got, want, 10))
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	as := append([]string(nil), a...)
	bs := append([]string(nil), b...)
	sort.Strings(as)
	sort.Strings(bs)
	for i := range as {
		if as[i] != bs[i] {
			return false
		}
	}
	return true
}

// minus returns up to max elements of a that are not in b.
func minus(a, b []string, max int) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] && len(out) < max {
			out = append(out, s)
		}
	}
	return out
}

func jsonStr(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// ---------------------------------------------------------------- WebSocket

var clientIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var wsDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

var errNoFrame = errors.New("no frame within the deadline")

// wsClient is a WebSocket connection with a reader goroutine that queues
// every frame it receives (unbounded) and records how the connection ended.
type wsClient struct {
	conn *websocket.Conn
	id   string

	mu       sync.Mutex
	frames   []rxFrame
	nonText  int
	err      error
	notify   chan struct{}
	done     chan struct{}
	closedAt time.Time
}

type dialOpt struct {
	path     string            // WebSocket path, default mainWSPath
	noPong   bool              // ignore pings (never answer them)
	onPing   func()            // called on every ping (after answering it)
	noReader bool              // do not start the reader goroutine
	header   map[string]string // extra handshake headers
}

// dial connects a client of systemID, reads the clientId frame and starts
// the reader. The connection is closed when the test ends.
func (n *node) dial(t testing.TB, systemID string) *wsClient {
	t.Helper()
	c, err := n.dialOpts(systemID, dialOpt{})
	if err != nil {
		t.Fatalf("dial %s: %v", systemID, err)
	}
	t.Cleanup(c.abort)
	return c
}

// dialOpts is dial for any goroutine: errors are returned, and the caller
// must close the client.
func (n *node) dialOpts(systemID string, o dialOpt) (*wsClient, error) {
	path := o.path
	if path == "" {
		path = mainWSPath
	}
	h := http.Header{}
	for k, v := range o.header {
		h.Set(k, v)
	}
	conn, resp, err := wsDialer.Dial(n.wsURLAt(path, systemID), h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: %v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &wsClient{conn: conn, notify: make(chan struct{}, 1), done: make(chan struct{})}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, first, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading the clientId frame: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if typ != websocket.TextMessage {
		conn.Close()
		return nil, fmt.Errorf("first frame is not a text frame (type %d)", typ)
	}
	var hello struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			ClientID string `json:"clientId"`
		} `json:"data"`
	}
	if err := json.Unmarshal(first, &hello); err != nil || hello.Code == nil || *hello.Code != 0 || hello.Msg != "success" {
		conn.Close()
		return nil, fmt.Errorf("first frame %s: want {\"code\":0,\"msg\":\"success\",\"data\":{\"clientId\":...}} (%v)", first, err)
	}
	if !clientIDRe.MatchString(hello.Data.ClientID) {
		conn.Close()
		return nil, fmt.Errorf("clientId %q is not 1-64 characters of [A-Za-z0-9_-]", hello.Data.ClientID)
	}
	c.id = hello.Data.ClientID
	if o.noPong {
		conn.SetPingHandler(func(string) error {
			if o.onPing != nil {
				o.onPing()
			}
			return nil
		})
	} else if o.onPing != nil {
		conn.SetPingHandler(func(app string) error {
			o.onPing()
			err := conn.WriteControl(websocket.PongMessage, []byte(app), time.Now().Add(time.Second))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			return err
		})
	}
	if !o.noReader {
		go c.readLoop()
	} else {
		close(c.done)
	}
	return c, nil
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		typ, b, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.closedAt = time.Now()
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if typ != websocket.TextMessage {
			c.nonText++
		}
		c.frames = append(c.frames, rxFrame{b, time.Now()})
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// rxFrame is a received frame and when the reader got it.
type rxFrame struct {
	data []byte
	at   time.Time
}

// next returns the next queued frame, waiting at most d.
func (c *wsClient) next(d time.Duration) ([]byte, error) {
	f, err := c.nextAt(d)
	return f.data, err
}

// nextAt is next with the frame's arrival time.
func (c *wsClient) nextAt(d time.Duration) (rxFrame, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for i := 0; ; i++ {
		c.mu.Lock()
		if len(c.frames) > 0 {
			f := c.frames[0]
			c.frames[0] = rxFrame{}
			c.frames = c.frames[1:]
			c.mu.Unlock()
			return f, nil
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
			c.mu.Lock()
			empty, err := len(c.frames) == 0, c.err
			c.mu.Unlock()
			if empty {
				return rxFrame{}, fmt.Errorf("connection closed: %v", err)
			}
		case <-timer.C:
			return rxFrame{}, errNoFrame
		}
	}
}

// pending is the number of frames received and not yet taken.
func (c *wsClient) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// closeErr waits at most d for the connection to end and returns how it
// ended (nil, false on timeout).
func (c *wsClient) closeErr(d time.Duration) (error, bool) {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err, true
	case <-time.After(d):
		return nil, false
	}
}

// closeCode is the close code the server sent, -1 when the connection ended
// without a close frame, -2 when it did not end within d.
func (c *wsClient) closeCode(d time.Duration) (int, error) {
	err, ok := c.closeErr(d)
	if !ok {
		return -2, errors.New("connection still open")
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, err
	}
	return -1, err
}

func (c *wsClient) expectClose(t testing.TB, code int, d time.Duration) {
	t.Helper()
	got, err := c.closeCode(d)
	if got != code {
		t.Errorf("client %s: want close code %d within %v, got %d (%v)", c.id, code, d, got, err)
	}
}

// close sends a normal close frame and closes the socket; abort only closes
// the socket. Both wait (bounded) for the reader to end.
func (c *wsClient) close() {
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.abort()
}

func (c *wsClient) abort() {
	_ = c.conn.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// ------------------------------------------------------------ pushed frames

var pushKeys = []string{"messageId", "sendUserId", "code", "msg", "data"}

// frame is a pushed message; Data holds the exact bytes of the data value.
type frame struct {
	Raw        []byte
	Keys       []string
	MessageID  string
	SendUserID string
	Code       int
	Msg        string
	Data       json.RawMessage
}

// parseFrame decodes a pushed frame, keeping the order of its keys and the
// raw bytes of every value.
func parseFrame(raw []byte) (frame, error) {
	f := frame{Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return f, fmt.Errorf("frame %s is not a JSON object", raw)
	}
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f, fmt.Errorf("frame %s: %v", raw, err)
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return f, fmt.Errorf("frame %s: %v", raw, err)
		}
		f.Keys = append(f.Keys, k)
		vals[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return f, fmt.Errorf("frame %s: %v", raw, err)
	}
	if dec.More() {
		return f, fmt.Errorf("frame %s: more than one JSON value", raw)
	}
	for k, dst := range map[string]any{"messageId": &f.MessageID, "sendUserId": &f.SendUserID, "code": &f.Code, "msg": &f.Msg} {
		if v, ok := vals[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return f, fmt.Errorf("frame %s: key %s: %v", raw, k, err)
			}
		}
	}
	f.Data = vals["data"]
	return f, nil
}

// expectPush takes the next frame (within d) and checks it is a well-formed
// push: keys exactly messageId, sendUserId, code, msg, data in that order.
func (c *wsClient) expectPush(t testing.TB, d time.Duration) frame {
	t.Helper()
	raw, err := c.next(d)
	if err != nil {
		t.Fatalf("client %s: waiting %v for a pushed frame: %v", c.id, d, err)
	}
	f, err := parseFrame(raw)
	if err != nil {
		t.Fatalf("client %s: %v", c.id, err)
	}
	c.mu.Lock()
	nonText := c.nonText
	c.mu.Unlock()
	if nonText > 0 {
		t.Errorf("client %s: received %d non-text data frames (every push is one text frame)", c.id, nonText)
	}
	if strings.Join(f.Keys, ",") != strings.Join(pushKeys, ",") {
		t.Errorf("client %s: frame %s has keys %v, want exactly %v in this order", c.id, raw, f.Keys, pushKeys)
	}
	checkMessageID(t, f.MessageID)
	return f
}

// expectNoFrame requires that nothing arrives within d.
func (c *wsClient) expectNoFrame(t testing.TB, d time.Duration) {
	t.Helper()
	raw, err := c.next(d)
	if err == nil {
		t.Errorf("client %s: unexpected frame %s", c.id, raw)
	}
}

type memberEvent struct {
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
	UserID    string `json:"userId"`
	Extend    string `json:"extend"`
}

// expectEvent requires the next frame to be the membership event code
// (1001/1002) with exactly this data.
func (c *wsClient) expectEvent(t testing.TB, code int, want memberEvent) frame {
	t.Helper()
	f := c.expectPush(t, 3*time.Second)
	checkEvent(t, c.id, f, code, want)
	return f
}

func checkEvent(t testing.TB, receiver string, f frame, code int, want memberEvent) {
	t.Helper()
	if f.Code != code {
		t.Fatalf("client %s: want a %d event for %+v, got frame %s", receiver, code, want, f.Raw)
	}
	if f.SendUserID != "" {
		t.Errorf("client %s: event %s: sendUserId %q, want \"\"", receiver, f.Raw, f.SendUserID)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(f.Data, &keys); err != nil {
		t.Fatalf("client %s: event data %s is not an object", receiver, f.Data)
	}
	if len(keys) != 4 {
		t.Errorf("client %s: event data %s: want exactly clientId, groupName, userId, extend", receiver, f.Data)
	}
	var got memberEvent
	if err := json.Unmarshal(f.Data, &got); err != nil {
		t.Fatalf("client %s: event data %s: %v", receiver, f.Data, err)
	}
	if got != want {
		t.Errorf("client %s: event %d data %+v, want %+v", receiver, code, got, want)
	}
}

// pollUntil calls cond every step until it is true or within has passed.
func pollUntil(within, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for i := 0; i < 100000; i++ {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(step)
	}
	return false
}
