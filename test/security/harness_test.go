package security

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

var (
	binPath  string // the server binary under test, built by TestMain
	repoRoot string // directory of the module's go.mod
	confPath string // the repository's conf.ini, passed with -c
)

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" { // this binary re-executed as the latency probe
		os.Exit(runProbe())
	}
	os.Exit(nodeproc.RunSuite(m, nodeproc.Suite{Name: "security", TmpPattern: "gows-security-bin-", Parallel: 8},
		func(root, conf, bin string) { repoRoot, confPath, binPath = root, conf, bin }))
}

// randHex returns n random bytes in hex: unique, greppable secrets.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// env is a set of GOWS_ overrides for one node.
type env map[string]string

// Configuration keys the suite sets.
const (
	kAPITokens     = "GOWS_SECURITY_APITOKENS"
	kConnectSecret = "GOWS_SECURITY_CONNECTSECRET"
	kOrigins       = "GOWS_SECURITY_ALLOWEDORIGINS"
	kRateLimit     = "GOWS_SECURITY_RATELIMIT"
	kRateBurst     = "GOWS_SECURITY_RATEBURST"
	kMaxConns      = "GOWS_WEBSOCKET_MAXCONNECTIONS"
	kMaxConnsSys   = "GOWS_WEBSOCKET_MAXCONNECTIONSPERSYSTEM"
	kMaxBody       = "GOWS_SERVER_MAXBODYBYTES"
	kReadLimit     = "GOWS_WEBSOCKET_READLIMIT"
	kLogLevel      = "GOWS_LOG_LEVEL"
)

// node is one server process under test with its API client.
type node struct {
	*nodeproc.Node
	api *wstest.API

	// apiToken is sent as "Authorization: Bearer" by the helpers (not by
	// raw requests); connectSecret signs the connect tokens of dial.
	apiToken      string
	connectSecret string
}

// startNode starts a node with the suite's defaults and e, and waits until
// GET /healthz answers 200. It is stopped with SIGTERM when the test ends and
// its log is printed if the test failed.
func startNode(t testing.TB, e env) *node {
	t.Helper()
	full := env{"GOWS_SERVER_DRAINTIMEOUT": "3s", "GOWS_LOG_LEVEL": "info"}
	for k, v := range e {
		full[k] = v
	}
	n := &node{Node: nodeproc.Start(t, binPath, confPath, full), connectSecret: e[kConnectSecret]}
	if toks := e[kAPITokens]; toks != "" {
		n.apiToken = strings.TrimSpace(strings.Split(toks, ",")[0])
	}
	n.api = &wstest.API{URL: n.URL, Client: n.HC, Token: n.apiToken}
	return n
}

// ------------------------------------------------------------------ HTTP API

const (
	mainPrefix   = wstest.Prefix
	legacyPrefix = wstest.LegacyPrefix
	mainWSPath   = wstest.WSPath
	legacyWSPath = wstest.LegacyWSPath
)

var prefixes = []string{mainPrefix, legacyPrefix}

// endpoints is every POST endpoint of the original API.
var endpoints = wstest.Endpoints

// send sends one request with exactly the given headers (a body of unknown
// length goes chunked) and checks the envelope. It is safe from any
// goroutine; it does not call t.
func send(hc *http.Client, method, url string, h http.Header, body io.Reader) (*wstest.Resp, error) {
	r, err := (&wstest.API{Client: hc}).DoReader(method, url, h, body)
	if err != nil {
		return nil, err
	}
	return r, wstest.CheckEnvelope(r)
}

// headers builds the usual API headers: JSON, systemId (unless ""), and the
// node's API token (unless it has none).
func (n *node) headers(systemID string) http.Header { return n.api.Headers(systemID) }

// raw POSTs body to path with exactly h; transport errors are fatal, envelope
// problems are errors.
func (n *node) raw(t testing.TB, path string, h http.Header, body any) *wstest.Resp {
	t.Helper()
	r, err := send(n.HC, http.MethodPost, n.URL+path, h, bytes.NewReader(wstest.Body(body)))
	if r == nil {
		t.Fatalf("%v", err)
	}
	if err != nil {
		t.Errorf("%v", err)
	}
	return r
}

// postAt POSTs body to prefix+name with the usual headers.
func (n *node) postAt(t testing.TB, prefix, name, systemID string, body any) *wstest.Resp {
	t.Helper()
	return n.raw(t, prefix+name, n.headers(systemID), body)
}

func (n *node) post(t testing.TB, name, systemID string, body any) *wstest.Resp {
	t.Helper()
	return n.postAt(t, mainPrefix, name, systemID, body)
}

// ok requires code 0 and returns data.
func (n *node) ok(t testing.TB, name, systemID string, body any) json.RawMessage {
	t.Helper()
	r := n.post(t, name, systemID, body)
	if r.Code != 0 || r.Status != 200 {
		t.Fatalf("%s: want code 0 / HTTP 200", r)
	}
	return r.Data
}

// wantCode requires code (and its HTTP status).
func wantCode(t testing.TB, r *wstest.Resp, code int, what string) {
	t.Helper()
	if r.Code != code || r.Status != wstest.StatusOfCode[code] {
		t.Errorf("%s: %s: want code %d / HTTP %d", what, r, code, wstest.StatusOfCode[code])
	}
}

func decode(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	wstest.Decode(t, raw, v)
}

func (n *node) register(t testing.TB, systemIDs ...string) {
	t.Helper()
	for _, s := range systemIDs {
		n.ok(t, "register", "", map[string]string{"systemId": s})
	}
}

func (n *node) isOnline(t testing.TB, systemID, clientID string) bool {
	t.Helper()
	var d struct {
		Online *bool `json:"online"`
	}
	decode(t, n.ok(t, "is_online", systemID, map[string]string{"clientId": clientID}), &d)
	if d.Online == nil {
		t.Fatalf("is_online: no online field")
	}
	return *d.Online
}

// waitOffline polls is_online (bounded) until the client is gone.
func (n *node) waitOffline(t testing.TB, systemID, clientID string, within time.Duration) {
	t.Helper()
	if wstest.Poll(within, func() bool { return !n.isOnline(t, systemID, clientID) }) {
		return
	}
	t.Errorf("client %s of %s still online after %v", clientID, systemID, within)
}

func (n *node) onlineList(t testing.TB, systemID, group string) []string {
	t.Helper()
	body := map[string]string{}
	if group != "" {
		body["groupName"] = group
	}
	var d struct {
		Count int      `json:"count"`
		List  []string `json:"list"`
	}
	decode(t, n.ok(t, "get_online_list", systemID, body), &d)
	if d.List == nil || d.Count != len(d.List) {
		t.Errorf("get_online_list %s/%q: count %d, list %v", systemID, group, d.Count, d.List)
	}
	sort.Strings(d.List)
	return d.List
}

// sendTo pushes data to one client and returns the messageId.
func (n *node) sendTo(t testing.TB, systemID, clientID, data string) string {
	t.Helper()
	var d struct {
		MessageID string `json:"messageId"`
	}
	decode(t, n.ok(t, "send_to_client", systemID, `{"clientId":`+jsonStr(clientID)+`,"sendUserId":"backend","data":`+data+`}`), &d)
	if d.MessageID == "" {
		t.Fatalf("send_to_client: no messageId")
	}
	return d.MessageID
}

func jsonStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ------------------------------------------------------------------ metrics

// metrics fetches GET /metrics (no credentials): the text as served and
// the parsed families.
func (n *node) metrics(t testing.TB) (string, *wstest.Metrics) {
	t.Helper()
	m := wstest.MustScrape(t, n.HC, n.URL+"/metrics")
	return m.Text, m
}

// metric sums the series of name whose labels include want (0 when none).
func (n *node) metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	_, m := n.metrics(t)
	return m.Value(name, wstest.Labels(want)...)
}

// waitMetric polls a metric until it equals want (the node may count a
// request just after answering it) and returns the last value read.
func (n *node) waitMetric(t testing.TB, name string, labels map[string]string, want float64) float64 {
	t.Helper()
	var v float64
	wstest.Poll(3*time.Second, func() bool { v = n.metric(t, name, labels); return v == want })
	return v
}
