package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "go-websocket test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate for 127.0.0.1 named cn, signed by the
// CA, and its key, to certFile and keyFile (replacing them atomically).
func (ca *testCA) issue(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func writeAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startTLSNode starts a node serving TLS with the given files and waits
// until GET https://…/healthz answers 200 through a client that trusts ca.
func startTLSNode(t *testing.T, ca *testCA, certFile, keyFile string) *node {
	t.Helper()
	port := nodeproc.FreePort(t)
	dir := t.TempDir()
	env := map[string]string{
		"GOWS_SERVER_HOST":     "127.0.0.1",
		"GOWS_SERVER_HTTPPORT": strconv.Itoa(port),
		"GOWS_SERVER_RPCPORT":  strconv.Itoa(nodeproc.FreePort(t)),
		"GOWS_SERVER_DATADIR":  dir,
		"GOWS_SERVER_TLSCERT":  certFile,
		"GOWS_SERVER_TLSKEY":   keyFile,
		"GOWS_LOG_LEVEL":       "info",
	}
	p, err := nodeproc.Launch(t, nodeproc.Spec{Bin: binPath, Args: []string{"-c", confPath}, Env: env, Dir: dir, Port: port,
		TLS: &tls.Config{RootCAs: ca.pool}, ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	return wrapNode(t, p)
}

// servedName is the common name of the certificate a new TLS connection to
// the node gets.
func servedName(t *testing.T, n *node, ca *testCA) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(n.port),
		&tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// waitLog waits (bounded) until the node's output contains s, count times.
func waitLog(t *testing.T, n *node, s string, count int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 500 && time.Now().Before(deadline); i++ {
		if strings.Count(n.output(), s) >= count {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the node did not log %q (%d times) within 10s:\n%s", s, count, n.output())
}

// wss:// with a real client that trusts only the test CA; the certificate
// is swapped on SIGHUP: new connections get the new one while a connection
// opened before the swap stays open and keeps receiving; a broken pair on a
// later SIGHUP leaves the current certificate in use.
func TestTLSListenerAndReload(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.issue(t, "gows-first", certFile, keyFile)
	n := startTLSNode(t, ca, certFile, keyFile)
	n.register(t, "tls-sys")

	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, HandshakeTimeout: 5 * time.Second}
	wsURL := "wss://127.0.0.1:" + strconv.Itoa(n.port) + "/api/websocket/ws?systemId=tls-sys"
	dial := func() (*websocket.Conn, string, string) {
		t.Helper()
		c, resp, err := dialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatalf("wss dial: %v", err)
		}
		resp.Body.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("welcome frame: %v", err)
		}
		var w struct {
			Code int `json:"code"`
			Data struct {
				ClientID string `json:"clientId"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &w); err != nil || w.Code != 0 || w.Data.ClientID == "" {
			t.Fatalf("welcome frame %s: %v", b, err)
		}
		cn := c.UnderlyingConn().(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
		return c, w.Data.ClientID, cn
	}
	push := func(c *websocket.Conn, clientID, text string) {
		t.Helper()
		n.ok(t, "send_to_client", "tls-sys", map[string]any{"clientId": clientID, "data": text})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil || !strings.Contains(string(b), `"data":"`+text+`"`) {
			t.Fatalf("push %q over wss: %s %v", text, b, err)
		}
	}

	old, oldID, cn := dial()
	defer old.Close()
	if cn != "gows-first" {
		t.Fatalf("served certificate %q, want gows-first", cn)
	}
	push(old, oldID, "before the reload")

	// Plain HTTP on the TLS port gets no API answer.
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(n.port) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}

	ca.issue(t, "gows-second", certFile, keyFile)
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n, "TLS certificate reloaded", 1)
	if got := servedName(t, n, ca); got != "gows-second" {
		t.Fatalf("after SIGHUP a new connection gets %q, want gows-second", got)
	}
	fresh, freshID, cn := dial()
	defer fresh.Close()
	if cn != "gows-second" {
		t.Errorf("a wss connection after the reload got %q", cn)
	}
	// The connection from before the reload is still open and still served.
	push(old, oldID, "after the reload")
	push(fresh, freshID, "to the new connection")
	if got := old.UnderlyingConn().(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; got != "gows-first" {
		t.Errorf("the old connection's certificate changed to %q", got)
	}

	// A broken pair: the node says so and keeps the certificate in use.
	writeAtomic(t, certFile, []byte("not a certificate\n"))
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n, "the TLS certificate was not reloaded", 1)
	if got := servedName(t, n, ca); got != "gows-second" {
		t.Errorf("after a failed reload a new connection gets %q, want gows-second", got)
	}
	push(old, oldID, "after a failed reload")
	// Clients that go away first: the node has nothing to drain.
	old.Close()
	fresh.Close()
	if code, _ := n.stop(); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	if out := n.output(); stackTrace.MatchString(out) {
		t.Errorf("a stack trace in the log:\n%s", out)
	}
}

// A node whose certificate does not load does not start, and says which key
// and file are wrong.
func TestTLSBadPairStopsStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(cert, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"junk files":   {"GOWS_SERVER_TLSCERT": cert, "GOWS_SERVER_TLSKEY": key},
		"key missing":  {"GOWS_SERVER_TLSCERT": cert},
		"missing file": {"GOWS_SERVER_TLSCERT": filepath.Join(dir, "nope.pem"), "GOWS_SERVER_TLSKEY": key},
	} {
		e := baseEnv(t, t.TempDir())
		for k, v := range env {
			e[k] = v
		}
		code, out, errOut := runCLI(t, "", 10*time.Second, e, "-c", confPath)
		if code == 0 || code == -1 || !strings.Contains(out+errOut, "server.tls") {
			t.Errorf("%s: exit %d, want a non-zero exit naming server.tlsCert or tlsKey:\n%s%s", name, code, out, errOut)
		}
	}
}
