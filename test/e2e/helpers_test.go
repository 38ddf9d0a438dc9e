package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
	"github.com/gorilla/websocket"
)

// ---------------------------------------------------------------- HTTP API

// Path sets: the main one and the legacy one of woodylan/go-websocket.
const (
	mainPrefix   = wstest.Prefix
	legacyPrefix = wstest.LegacyPrefix
	mainWSPath   = wstest.WSPath
	legacyWSPath = wstest.LegacyWSPath
)

// apiEndpoints are every POST endpoint of SPEC section 2.
var apiEndpoints = wstest.Endpoints

// statusOfCode is SPEC section 5.
var statusOfCode = wstest.StatusOfCode

const jsonContentType = wstest.JSONContentType

// apiResp is one HTTP answer of the node.
type apiResp = wstest.Resp

// checkEnvelope verifies what every API answer must be (SPEC 2 and 5): JSON
// with the right Content-Type, never empty, an envelope {code,msg,data} whose
// code is from the table and whose HTTP status matches it, never a 500.
var checkEnvelope = wstest.CheckEnvelope

// rawRequest sends one request; headers are set exactly as given (case kept;
// Content-Type application/json unless given, when there is a body). It does
// not check the answer.
func (n *node) rawRequest(method, path string, headers map[string]string, body []byte) (*apiResp, error) {
	h := http.Header{}
	if _, ok := headers["Content-Type"]; !ok && body != nil {
		h.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		h[k] = []string{v}
	}
	return n.api.Do(method, path, h, body)
}

// do sends a request and checks the envelope and the OpenAPI document
// (wstest.CheckEnvelope); safe from any goroutine.
func (n *node) do(method, path string, headers map[string]string, body []byte) (*apiResp, error) {
	r, err := n.rawRequest(method, path, headers, body)
	if err != nil {
		return nil, err
	}
	return r, checkEnvelope(r)
}

// bodyBytes is the request body of body: nil as {}, string and []byte as
// they are, anything else JSON-encoded.
var bodyBytes = wstest.Body

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
	wstest.Decode(t, raw, v)
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

var checkMessageID = wstest.CheckMessageID

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
	if !wstest.PollEvery(within, 20*time.Millisecond, func() bool { return !n.isOnline(t, systemID, clientID) }) {
		t.Fatalf("client %s still online after %v", clientID, within)
	}
}

// waitOnlineSet polls get_online_list until its list is exactly want.
func (n *node) waitOnlineSet(t testing.TB, systemID, group string, want []string, within time.Duration) {
	t.Helper()
	var got []string
	if wstest.PollEvery(within, 25*time.Millisecond, func() bool {
		_, got = n.onlineList(t, systemID, group)
		return sameSet(got, want)
	}) {
		return
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

var wsDialer = wstest.DefaultDialer

// wsClient is a wstest client under the suite's names: id, conn and done
// are its ID, Conn and Done().
type wsClient struct {
	*wstest.Client
	id   string
	conn *websocket.Conn
	done <-chan struct{}
}

func wrapClient(c *wstest.Client) *wsClient {
	return &wsClient{Client: c, id: c.ID, conn: c.Conn, done: c.Done()}
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
	h := http.Header{}
	for k, v := range o.header {
		h.Set(k, v)
	}
	c, err := wstest.Dial(n.url, systemID, wstest.Options{Path: o.path, Header: h, NoPong: o.noPong, OnPing: o.onPing, NoReader: o.noReader})
	if err != nil {
		return nil, err
	}
	return wrapClient(c), nil
}

// rxFrame is a received frame and when the reader got it.
type rxFrame struct {
	data []byte
	at   time.Time
}

// next returns the next queued frame, waiting at most d.
func (c *wsClient) next(d time.Duration) ([]byte, error) { return c.Next(d) }

// nextAt is next with the frame's arrival time.
func (c *wsClient) nextAt(d time.Duration) (rxFrame, error) {
	f, err := c.NextAt(d)
	return rxFrame{f.Data, f.At}, err
}

// pending is the number of frames received and not yet taken.
func (c *wsClient) pending() int { return c.Pending() }

// closeCode is the close code the server sent, -1 when the connection ended
// without a close frame, -2 when it did not end within d.
func (c *wsClient) closeCode(d time.Duration) (int, error) { return c.CloseCode(d) }

func (c *wsClient) expectClose(t testing.TB, code int, d time.Duration) {
	t.Helper()
	c.ExpectClose(t, code, d)
}

// close sends a normal close frame and closes the socket; abort only closes
// the socket. Both wait (bounded) for the reader to end.
func (c *wsClient) close() { c.Close() }

func (c *wsClient) abort() { c.Abort() }

// ------------------------------------------------------------ pushed frames

// frame is a pushed message; Data holds the exact bytes of the data value.
type frame = wstest.Frame

// parseFrame decodes a pushed frame, keeping the order of its keys and the
// raw bytes of every value.
var parseFrame = wstest.ParseFrame

// expectPush takes the next frame (within d) and checks it is a well-formed
// push: keys exactly messageId, sendUserId, code, msg, data in that order.
func (c *wsClient) expectPush(t testing.TB, d time.Duration) frame {
	t.Helper()
	return c.ExpectPush(t, d)
}

// expectNoFrame requires that nothing arrives within d.
func (c *wsClient) expectNoFrame(t testing.TB, d time.Duration) {
	t.Helper()
	c.ExpectNoFrame(t, d)
}

type memberEvent = wstest.MemberEvent

// expectEvent requires the next frame to be the membership event code
// (1001/1002) with exactly this data.
func (c *wsClient) expectEvent(t testing.TB, code int, want memberEvent) frame {
	t.Helper()
	return c.ExpectEvent(t, code, want)
}

var checkEvent = wstest.CheckEvent
