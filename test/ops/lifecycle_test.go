package ops

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// SPEC 7 + decision: --version prints a version and exits 0; --help prints
// the usage (naming -c) and exits 0.
func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	code, out := runBinary(t, 10*time.Second, nil, "--version")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("--version: exit %d, output %q; want exit 0 and a version", code, out)
	}
	code, out = runBinary(t, 10*time.Second, nil, "--help")
	if code != 0 || !strings.Contains(out, "-c") {
		t.Errorf("--help: exit %d, output %q; want exit 0 and a usage that names -c", code, out)
	}
}

// baseEnv is a complete, valid environment for a node that is not started
// through startNode.
func baseEnv(t *testing.T, dataDir string) map[string]string {
	return map[string]string{
		"GOWS_SERVER_HOST":     "127.0.0.1",
		"GOWS_SERVER_HTTPPORT": strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_RPCPORT":  strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_DATADIR":  dataDir,
		"GOWS_LOG_LEVEL":       "warn",
	}
}

// SPEC 7: a bad config fails at start (non-zero exit) with a message that
// names the key.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		key, value, mention string
	}{
		{"GOWS_SERVER_HTTPPORT", "70000", "httpport"},
		{"GOWS_SERVER_HTTPPORT", "abc", "httpport"},
		{"GOWS_WEBSOCKET_PINGINTERVAL", "-5s", "pinginterval"},
		{"GOWS_WEBSOCKET_PINGINTERVAL", "soon", "pinginterval"},
		{"GOWS_LOG_LEVEL", "loud", "level"},
		{"GOWS_WEBSOCKET_QUEUELENGTH", "-1", "queuelength"},
		{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS", "maybe", "membershipevents"},
		{"GOWS_SERVER_MAXBODYBYTES", "lots", "maxbodybytes"},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t, t.TempDir())
			env[tc.key] = tc.value
			code, out := runBinary(t, 10*time.Second, env, "-c", confPath)
			if code == -1 {
				t.Fatalf("the node started with %s=%s (killed after 10s); output:\n%s", tc.key, tc.value, out)
			}
			if code == 0 {
				t.Errorf("exit 0 with %s=%s; want a non-zero exit", tc.key, tc.value)
			}
			low := strings.ToLower(out)
			if !strings.Contains(low, tc.mention) {
				t.Errorf("%s=%s: the message does not name the key (%s):\n%s", tc.key, tc.value, tc.mention, out)
			}
		})
	}
	t.Run("missing config file", func(t *testing.T) {
		t.Parallel()
		env := baseEnv(t, t.TempDir())
		missing := filepath.Join(t.TempDir(), "nonexistent.ini")
		code, out := runBinary(t, 10*time.Second, env, "-c", missing)
		if code == 0 || code == -1 {
			t.Errorf("-c %s: exit %d; want a non-zero exit at start\n%s", missing, code, out)
		}
		if !strings.Contains(out, "nonexistent.ini") {
			t.Errorf("-c %s: the message does not name the file:\n%s", missing, out)
		}
	})
}

// Decision: a corrupt <dataDir>/systems.json makes start-up fail with a
// message naming the file.
func TestCorruptSystemsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "systems.json"), []byte("{this is not json\x00\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runBinary(t, 10*time.Second, baseEnv(t, dir), "-c", confPath)
	if code == -1 {
		t.Fatalf("the node started on a corrupt systems.json; output:\n%s", out)
	}
	if code == 0 || !strings.Contains(out, "systems.json") {
		t.Errorf("exit %d; want non-zero and a message naming systems.json:\n%s", code, out)
	}
}

// SPEC 7: /healthz and /readyz answer 200 on a standalone node; /metrics is
// Prometheus text.
func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := n.HC.Get(n.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: HTTP %d %s", p, resp.StatusCode, b)
		}
		if p == "/metrics" && !strings.Contains(string(b), "# TYPE ") {
			t.Errorf("GET /metrics is not Prometheus text: %.200s", b)
		}
	}
	// Connections per system: a sample labelled with the systemId counts
	// the two clients.
	n.register("metsys")
	n.dial("metsys")
	n.dial("metsys")
	resp, err := n.HC.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") || !strings.Contains(line, `"metsys"`) || !strings.Contains(strings.ToLower(line), "connection") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && v == 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("/metrics has no connections sample for system \"metsys\" with value 2")
	}
}

// SPEC 7: format = json gives structured JSON logs, one object a line.
func TestJSONLogs(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_LOG_FORMAT": "json", "GOWS_LOG_LEVEL": "info"})
	n.register("logs")
	c := n.dial("logs")
	n.sendToClient("logs", c.ID, "1")
	c.Close()
	if code, _ := n.Stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
	out := strings.TrimSpace(n.Output())
	if out == "" {
		t.Fatalf("no log output at level info")
	}
	for i, line := range strings.Split(out, "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line %d is not a JSON object: %.200s", i+1, line)
		}
	}
}

// SPEC 7: without -c the node reads conf.ini beside the binary; environment
// variables override the file.
func TestConfigBesideBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "go-websocket")
	src, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	filePort, envPort := nodeproc.FreePort(t), nodeproc.FreePort(t)
	data := t.TempDir()
	ini := "[server]\nhost = 127.0.0.1\nhttpPort = " + strconv.Itoa(filePort) + "\nrpcPort = " + strconv.Itoa(nodeproc.FreePort(t)) +
		"\ndataDir = " + data + "\n[log]\nlevel = warn\n"
	if err := os.WriteFile(filepath.Join(dir, "conf.ini"), []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	cwd := t.TempDir() // not the binary's directory
	p, err := nodeproc.Launch(t, nodeproc.Spec{Bin: bin, Env: map[string]string{}, Port: filePort, Dir: cwd, ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("conf.ini beside the binary: %v", err)
	}
	n := wrap(t, p)
	n.register("beside")
	n.Stop()
	p2, err := nodeproc.Launch(t, nodeproc.Spec{Bin: bin, Env: map[string]string{"GOWS_SERVER_HTTPPORT": strconv.Itoa(envPort)},
		Port: envPort, Dir: cwd, ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("GOWS_SERVER_HTTPPORT over conf.ini: %v", err)
	}
	// Same dataDir from the file: the system is still registered.
	wrap(t, p2).fail("register", "", map[string]any{"systemId": "beside"}, 10004)
}

// SPEC 4 (standalone): registered systems survive a restart on the same data
// directory (in <dataDir>/systems.json).
func TestRestartKeepsSystems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n1 := startNode(t, map[string]string{"GOWS_SERVER_DATADIR": dir})
	n1.register("keep1")
	n1.register("keep2 ü")
	c := n1.dial("keep1")
	if code, dur := n1.Stop(); code != 0 {
		t.Fatalf("first node: exit %d after %v; want 0", code, dur)
	}
	c.ExpectClose(t, 1001, 5*time.Second)
	if _, err := os.Stat(filepath.Join(dir, "systems.json")); err != nil {
		t.Errorf("no systems.json in the data directory: %v", err)
	}

	n2 := startNode(t, map[string]string{"GOWS_SERVER_DATADIR": dir})
	n2.fail("register", "", map[string]any{"systemId": "keep1"}, 10004)
	n2.fail("register", "", map[string]any{"systemId": "keep2 ü"}, 10004)
	n2.fail("send_to_system", "never-registered", `{}`, 10003)
	for _, s := range []string{"keep1", "keep2 ü"} {
		c := n2.dial(s)
		mid := n2.sendToClient(s, c.ID, `"back"`)
		if f := c.ExpectPush(t, 3*time.Second); f.MessageID != mid {
			t.Errorf("after restart: got %s", f.Raw)
		}
	}
	// Systems registered on the second run, 40 of them concurrently, are
	// kept as well, even through a crash (SIGKILL) right after the answers.
	n2.register("keep3")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := n2.api.Do(http.MethodPost, wstest.Prefix+"register", nil, wstest.Body(map[string]any{"systemId": "many-" + strconv.Itoa(i)}))
			if err == nil {
				err = wstest.CheckEnvelope(r)
			}
			if err == nil && r.Code != 0 {
				err = fmt.Errorf("%s: want code 0", r)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	n2.kill()
	n3 := startNode(t, map[string]string{"GOWS_SERVER_DATADIR": dir})
	for _, s := range []string{"keep1", "keep2 ü", "keep3"} {
		n3.fail("register", "", map[string]any{"systemId": s}, 10004)
	}
	for i := 0; i < 40; i++ {
		n3.fail("register", "", map[string]any{"systemId": "many-" + strconv.Itoa(i)}, 10004)
	}
}

// SPEC 4/7: SIGTERM drains the queues, closes every client with 1001 and
// exits 0 within the drain timeout.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{
		"GOWS_SERVER_DRAINTIMEOUT":        "3s",
		"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false",
	})
	n.register("bye")
	var clients []*wstest.Client
	for i := 0; i < 5; i++ {
		c := n.dial("bye")
		n.bind("bye", c.ID, "g")
		clients = append(clients, c)
	}
	// A client that never reads, with megabytes queued behind a full
	// socket: it must not hold the shutdown beyond the drain timeout.
	stuck, err := wstest.Dial(n.URL, "bye", wstest.Options{NoReader: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Conn.Close() })
	big := jsonStr(strings.Repeat("s", 64<<10))
	for i := 0; i < 150; i++ {
		n.must("send_to_client", "bye", `{"clientId":`+jsonStr(stuck.ID)+`,"data":`+big+`}`)
	}
	var res struct {
		MessageID string `json:"messageId"`
	}
	wstest.Decode(t, n.must("send_to_system", "bye", `{"data":"last words"}`), &res)
	code, dur := n.Stop()
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if dur > 5*time.Second {
		t.Errorf("exit took %v after SIGTERM (drainTimeout 3s)", dur)
	}
	for _, c := range clients {
		f := c.ExpectPush(t, time.Second)
		if f.MessageID != res.MessageID {
			t.Errorf("client %s: want the message sent before SIGTERM, got %s", c.ID, f.Raw)
		}
		c.ExpectClose(t, 1001, time.Second)
	}
	if resp, err := n.HC.Get(n.URL + "/healthz"); err == nil {
		resp.Body.Close()
		n.Tr.CloseIdleConnections()
		t.Errorf("node still answers after exit")
	}
}
