package security

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
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

// node is one server process under test.
type node struct {
	t       testing.TB
	cmd     *exec.Cmd
	port    int
	url     string // http://127.0.0.1:PORT
	logPath string
	logFile *os.File
	tr      *http.Transport
	hc      *http.Client

	// apiToken is sent as "Authorization: Bearer" by the helpers (not by
	// raw requests); connectSecret signs the connect tokens of dial.
	apiToken      string
	connectSecret string

	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// startNode starts a node with the suite's defaults and e, and waits until
// GET /healthz answers 200. It is stopped with SIGTERM when the test ends and
// its log is printed if the test failed.
func startNode(t testing.TB, e env) *node {
	t.Helper()
	dataDir := t.TempDir()
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		n, err := tryStart(t, e, dataDir)
		if err == nil {
			if toks := e[kAPITokens]; toks != "" {
				n.apiToken = strings.TrimSpace(strings.Split(toks, ",")[0])
			}
			n.connectSecret = e[kConnectSecret]
			return n
		}
		last = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("node did not start: %v", last)
	return nil
}

func tryStart(t testing.TB, e env, dataDir string) (*node, error) {
	port := nodeproc.FreePort(t)
	full := env{
		"GOWS_SERVER_HOST":         "127.0.0.1",
		"GOWS_SERVER_HTTPPORT":     strconv.Itoa(port),
		"GOWS_SERVER_RPCPORT":      strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_DATADIR":      dataDir,
		"GOWS_SERVER_DRAINTIMEOUT": "3s",
		"GOWS_LOG_LEVEL":           "info",
		"GOWS_CLUSTER_ENABLED":     "false",
	}
	for k, v := range e {
		full[k] = v
	}
	logFile, err := os.CreateTemp(t.TempDir(), "node-*.log")
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	cmd := exec.Command(binPath, "-c", confPath)
	cmd.Env = nodeproc.Env(full)
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start node: %v", err)
	}
	n := &node{
		t: t, cmd: cmd, port: port, url: "http://127.0.0.1:" + strconv.Itoa(port),
		logPath: logFile.Name(), logFile: logFile,
		tr: &http.Transport{
			MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: 5 * time.Second,
			DisableCompression: true,
		},
		done: make(chan struct{}),
	}
	n.hc = &http.Client{Transport: n.tr, Timeout: 15 * time.Second}
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("---- log of node %s (pid %d) ----\n%s\n---- end of node log ----", n.url, cmd.Process.Pid, n.logTail(16<<10))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 1500 && time.Now().Before(deadline); i++ {
		select {
		case <-n.done:
			return nil, fmt.Errorf("node exited before ready (%v): %s", n.waitErr, n.log())
		default:
		}
		resp, err := n.hc.Get(n.url + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.stop()
	return nil, fmt.Errorf("GET /healthz did not answer 200 within 15s: %s", n.log())
}

// log returns everything the node wrote so far.
func (n *node) log() string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

func (n *node) logTail(max int) string {
	s := n.log()
	if len(s) > max {
		return "...(cut)...\n" + s[len(s)-max:]
	}
	return s
}

// stop sends SIGTERM (to this node's PID only) and waits at most 15 s, then
// kills it. Idempotent.
func (n *node) stop() {
	n.stopOnce.Do(func() {
		n.tr.CloseIdleConnections()
		select {
		case <-n.done:
		default:
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.done:
			case <-time.After(15 * time.Second):
				n.t.Errorf("node %s did not exit within 15s of SIGTERM: killed", n.url)
				_ = n.cmd.Process.Kill()
				select {
				case <-n.done:
				case <-time.After(10 * time.Second):
				}
			}
		}
		n.tr.CloseIdleConnections()
		_ = n.logFile.Close()
	})
}

// ------------------------------------------------------------------ HTTP API

const (
	mainPrefix   = "/api/websocket/"
	legacyPrefix = "/api/"
	mainWSPath   = "/api/websocket/ws"
	legacyWSPath = "/ws"
)

var prefixes = []string{mainPrefix, legacyPrefix}

// endpoints is every POST endpoint of SPEC section 2.
var endpoints = []string{
	"register", "send_to_client", "send_to_clients", "bind_to_group", "unbind_from_group",
	"send_to_group", "send_to_system", "get_online_list", "is_online", "close_client",
}

// statusOf is SPEC section 5.
var statusOf = map[int]int{
	0:     200,
	10001: 400, 10002: 400, 10003: 404, 10004: 409, 10005: 401, 10006: 404,
	10007: 413, 10008: 405, 10009: 503, 10010: 429, 10011: 500, 10012: 403,
}

// apiResp is one HTTP answer.
type apiResp struct {
	Method, Path string
	Status       int
	Header       http.Header
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
	return fmt.Sprintf("%s %s -> HTTP %d %s", r.Method, r.Path, r.Status, b)
}

// checkEnvelope verifies every API answer is a JSON envelope {code,msg,data}
// with the JSON content type, a code from SPEC 5 and its HTTP status, and
// never a 5xx.
func checkEnvelope(r *apiResp) error {
	var p []string
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		p = append(p, fmt.Sprintf("Content-Type %q", ct))
	}
	if r.Status >= 500 {
		p = append(p, fmt.Sprintf("HTTP %d", r.Status))
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &env); err != nil {
		p = append(p, "body is not a JSON object: "+err.Error())
	} else {
		for _, k := range []string{"code", "msg", "data"} {
			if _, ok := env[k]; !ok {
				p = append(p, "no "+k+" in the envelope")
			}
		}
		if err := json.Unmarshal(env["code"], &r.Code); err != nil {
			p = append(p, "code is not an integer")
		}
		if err := json.Unmarshal(env["msg"], &r.Msg); err != nil {
			p = append(p, "msg is not a string")
		}
		r.Data = env["data"]
		// README: "an unknown path answers 404 with code 10001".
		unknownPath := r.Code == 10001 && r.Status == 404 && strings.HasPrefix(r.Msg, "no such endpoint")
		if want, ok := statusOf[r.Code]; !ok {
			p = append(p, fmt.Sprintf("code %d is not in SPEC 5", r.Code))
		} else if want != r.Status && !unknownPath {
			p = append(p, fmt.Sprintf("code %d goes with HTTP %d", r.Code, want))
		}
		if r.Code != 0 && strings.TrimSpace(r.Msg) == "" {
			p = append(p, "error without a msg")
		}
	}
	if len(p) > 0 {
		return fmt.Errorf("%s: %s", r, strings.Join(p, "; "))
	}
	return nil
}

// send sends one request with exactly the given headers and parses the
// envelope. It is safe from any goroutine; it does not call t.
func send(hc *http.Client, method, url string, h http.Header, body io.Reader) (*apiResp, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, url, err)
	}
	r := &apiResp{Method: method, Path: req.URL.RequestURI(), Status: resp.StatusCode, Header: resp.Header, Body: b}
	return r, checkEnvelope(r)
}

// headers builds the usual API headers: JSON, systemId (unless ""), and the
// node's API token (unless it has none).
func (n *node) headers(systemID string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if systemID != "" {
		h["systemId"] = []string{systemID}
	}
	if n.apiToken != "" {
		h["Authorization"] = []string{"Bearer " + n.apiToken}
	}
	return h
}

func jsonBody(body any) []byte {
	switch b := body.(type) {
	case nil:
		return []byte("{}")
	case string:
		return []byte(b)
	case []byte:
		return b
	}
	out, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return out
}

// raw POSTs body to path with exactly h; transport errors are fatal, envelope
// problems are errors.
func (n *node) raw(t testing.TB, path string, h http.Header, body any) *apiResp {
	t.Helper()
	r, err := send(n.hc, http.MethodPost, n.url+path, h, bytes.NewReader(jsonBody(body)))
	if r == nil {
		t.Fatalf("%v", err)
	}
	if err != nil {
		t.Errorf("%v", err)
	}
	return r
}

// postAt POSTs body to prefix+name with the usual headers.
func (n *node) postAt(t testing.TB, prefix, name, systemID string, body any) *apiResp {
	t.Helper()
	return n.raw(t, prefix+name, n.headers(systemID), body)
}

func (n *node) post(t testing.TB, name, systemID string, body any) *apiResp {
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
func wantCode(t testing.TB, r *apiResp, code int, what string) {
	t.Helper()
	if r.Code != code || r.Status != statusOf[code] {
		t.Errorf("%s: %s: want code %d / HTTP %d", what, r, code, statusOf[code])
	}
}

func decode(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decoding %s into %T: %v", raw, v, err)
	}
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
	deadline := time.Now().Add(within)
	for i := 0; i < 1000; i++ {
		if !n.isOnline(t, systemID, clientID) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
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

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics fetches GET /metrics (no credentials) and parses it.
func (n *node) metrics(t testing.TB) (string, []metricSample) {
	t.Helper()
	resp, err := n.hc.Get(n.url + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: HTTP %d, %v", resp.StatusCode, err)
	}
	var out []metricSample
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		s := metricSample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(s.name, '{'); i >= 0 {
			for _, kv := range strings.Split(strings.TrimSuffix(s.name[i+1:], "}"), ",") {
				if k, val, ok := strings.Cut(kv, "="); ok {
					s.labels[k] = strings.Trim(val, `"`)
				}
			}
			s.name = s.name[:i]
		}
		out = append(out, s)
	}
	return string(b), out
}

// metric sums the series of name whose labels include want (0 when none).
func (n *node) metric(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	_, samples := n.metrics(t)
	sum := 0.0
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

// waitMetric polls a metric until it equals want (the node may count a
// request just after answering it) and returns the last value read.
func (n *node) waitMetric(t testing.TB, name string, labels map[string]string, want float64) float64 {
	t.Helper()
	var v float64
	eventually(3*time.Second, func() bool { v = n.metric(t, name, labels); return v == want })
	return v
}

// ------------------------------------------------------------------ helpers

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for i := 0; i < 100000; i++ {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

var errTimeout = errors.New("timed out")
