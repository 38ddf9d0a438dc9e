package setting

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestConfINIDocumentsEveryKey checks that the shipped conf.ini lists
// exactly the declared keys, spelled as declared, in declaration order,
// each with its built-in default as the value.
func TestConfINIDocumentsEveryKey(t *testing.T) {
	f, err := os.Open(shippedConf(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type entry struct{ name, value string }
	var got []entry
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s[0] == ';' || s[0] == '#':
		case s[0] == '[':
			section = strings.Trim(s, "[]")
		default:
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				t.Fatalf("conf.ini: line %q", s)
			}
			got = append(got, entry{section + "." + strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var want []entry
	for _, f := range Fields() {
		want = append(want, entry{f.Name(), f.Default})
	}
	for i := range max(len(got), len(want)) {
		var g, w entry
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("conf.ini entry %d: %s = %q, the declaration says %s = %q", i+1, g.name, g.value, w.name, w.value)
		}
	}
}

func TestEveryKeyHasOneEnvName(t *testing.T) {
	seen := map[string]string{}
	for _, f := range Fields() {
		want := "GOWS_" + strings.ToUpper(f.Section) + "_" + strings.ToUpper(f.Key)
		if f.Env != want {
			t.Errorf("%s: env %s, want %s", f.Name(), f.Env, want)
		}
		if other, dup := seen[f.Env]; dup {
			t.Errorf("%s and %s share %s", f.Name(), other, f.Env)
		}
		seen[f.Env] = f.Name()
	}
	if len(Keys()) != len(Fields()) {
		t.Fatalf("Keys %d, Fields %d", len(Keys()), len(Fields()))
	}
}

// Every key can be set through its environment variable, and the value
// reaches the struct field the tags declare (and no other field).
func TestEnvReachesEveryField(t *testing.T) {
	base, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Fields() {
		t.Run(f.Name(), func(t *testing.T) {
			var val string
			switch {
			case f.kind == durationType:
				val = "59s" // below pongWait's default, above pingInterval's
				if f.Key == "pongWait" {
					val = "61s"
				}
				if f.Key == "writeDelay" {
					val = "5ms"
				}
			case f.kind.Kind() == reflect.Bool:
				val = map[bool]string{true: "false", false: "true"}[f.Default == "true"]
			case len(f.oneof) > 0:
				val = f.oneof[0]
				if val == f.Default {
					val = f.oneof[1]
				}
			case f.check == "port":
				val = "4321"
			default:
				val = "17"
			}
			if f.Section == "server" && strings.HasPrefix(f.Key, "tls") {
				t.Skip("files that must hold a key pair: TestTLSKeys")
			}
			t.Setenv(f.Env, val)
			if f.Name() == "cluster.enabled" {
				t.Setenv("GOWS_CLUSTER_SECRET", "0123456789abcdef")
			}
			c, err := Load(shippedConf(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range Fields() {
				was := reflect.ValueOf(base).Elem().FieldByIndex(g.index).Interface()
				now := reflect.ValueOf(c).Elem().FieldByIndex(g.index).Interface()
				changed := !reflect.DeepEqual(was, now)
				if g.Name() == f.Name() && !changed {
					t.Errorf("%s=%s left %s at %v", f.Env, val, g.Name(), now)
				}
				if g.Name() != f.Name() && changed && !(f.Name() == "cluster.enabled" && g.Name() == "cluster.secret") {
					t.Errorf("%s=%s changed %s to %v", f.Env, val, g.Name(), now)
				}
			}
		})
	}
}

func TestUnknownEnvStopsLoad(t *testing.T) {
	cases := []struct{ env, want string }{
		{"GOWS_SERVER_HTTPPORTT", "did you mean GOWS_SERVER_HTTPPORT"},
		{"GOWS_SERVER_HTTP_PORT", "did you mean GOWS_SERVER_HTTPPORT"},
		{"GOWS_WEBSOCKET_PINGINTERVALL", "did you mean GOWS_WEBSOCKET_PINGINTERVAL"},
		{"gows_log_level", "did you mean GOWS_LOG_LEVEL"},
		{"GOWS_NOTHING_LIKE_IT", "unknown key"},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, "1")
			_, err := Load(shippedConf(t))
			if err == nil || !strings.Contains(err.Error(), "environment variable "+c.env+":") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: error %v, want it named with %q", c.env, err, c.want)
			}
		})
	}
}

func TestHelpListsEveryKeyWithUnits(t *testing.T) {
	h := Help()
	for _, f := range Fields() {
		if !strings.Contains(h, "  "+f.Key+" = ") || !strings.Contains(h, f.Env) || !strings.Contains(h, f.Help) {
			t.Errorf("--help lacks %s", f.Name())
		}
	}
	for _, want := range []string{"drainTimeout = 10s", "pingInterval = 25s", "[cluster]", "rpcTimeout = 2s"} {
		if !strings.Contains(h, want) {
			t.Errorf("--help lacks %q:\n%s", want, h)
		}
	}
}

func TestLegacyAppINI(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.ini")
	old := "[common]\nHttpPort = 7811\nRPCPort = 7911\n# standalone\nCluster = false\nCryptoKey = Adba723b7fe06819\n\n[etcd]\nEndpoints = 10.0.0.1:2379, 10.0.0.2:2379\n"
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPPort != 7811 || c.Server.RPCPort != 7911 || c.Cluster.Enabled ||
		strings.Join(c.Cluster.EtcdEndpoints, "|") != "10.0.0.1:2379|10.0.0.2:2379" {
		t.Errorf("legacy keys not applied: %+v %+v", c.Server, c.Cluster)
	}
	want := map[string]string{
		"common.HttpPort":  "server.httpPort",
		"common.RPCPort":   "server.rpcPort",
		"common.Cluster":   "cluster.enabled",
		"common.CryptoKey": "ignored",
		"etcd.Endpoints":   "cluster.etcdEndpoints",
	}
	if len(c.Warnings()) != len(want) {
		t.Errorf("warnings %q", c.Warnings())
	}
	for old, nw := range want {
		n := 0
		for _, w := range c.Warnings() {
			if strings.Contains(w, old+" ") && strings.Contains(w, nw) && !strings.Contains(w, "\n") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("want one warning naming %s and %s in %q", old, nw, c.Warnings())
		}
	}

	// The new name wins when both are set; an unknown old key is refused.
	if err := os.WriteFile(p, []byte("[server]\nhttpPort = 7812\n[common]\nHttpPort = 7811\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p); err != nil || c.Server.HTTPPort != 7812 || len(c.Warnings()) != 1 || !strings.Contains(c.Warnings()[0], "ignored") {
		t.Errorf("both set: %v %v", err, c)
	}
	if err := os.WriteFile(p, []byte("[common]\nHttpPort = 7811\nLogLevel = debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "common.loglevel: unknown key") || !strings.Contains(err.Error(), "MIGRATING.md") {
		t.Errorf("unknown old key: %v", err)
	}
	// Cluster = true needs the new cluster.secret: the message names it.
	if err := os.WriteFile(p, []byte("[common]\nCluster = true\n[etcd]\nEndpoints = 127.0.0.1:2379\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "cluster.secret") {
		t.Errorf("old cluster config: %v", err)
	}
}

func TestTLSKeys(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeKeyPair(t, cert, key)
	t.Setenv("GOWS_SERVER_TLSCERT", cert)
	t.Setenv("GOWS_SERVER_TLSKEY", key)
	c, err := Load(shippedConf(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.TLSCert != cert || c.Server.TLSKey != key {
		t.Errorf("tls %q %q", c.Server.TLSCert, c.Server.TLSKey)
	}
	t.Setenv("GOWS_SERVER_TLSKEY", "")
	if _, err := Load(shippedConf(t)); err == nil || !strings.Contains(err.Error(), "server.tlsKey") {
		t.Errorf("cert without key: %v", err)
	}
	t.Setenv("GOWS_SERVER_TLSKEY", cert) // not a key
	if _, err := Load(shippedConf(t)); err == nil || !strings.Contains(err.Error(), "server.tlsCert") {
		t.Errorf("a certificate as the key: %v", err)
	}
	t.Setenv("GOWS_SERVER_TLSKEY", filepath.Join(dir, "missing.pem"))
	if _, err := Load(shippedConf(t)); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing key file: %v", err)
	}
}

func TestDashboardTokenDiffersFromAPITokens(t *testing.T) {
	t.Setenv("GOWS_SECURITY_APITOKENS", "a-token,b-token")
	t.Setenv("GOWS_SECURITY_DASHBOARDTOKEN", "b-token")
	if _, err := Load(shippedConf(t)); err == nil || !strings.Contains(err.Error(), "security.dashboardToken") {
		t.Errorf("dashboard token equal to an API token: %v", err)
	}
}

// writeKeyPair writes a self-signed ECDSA certificate for 127.0.0.1 and its key.
func writeKeyPair(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// docs/MIGRATING.md's table names every old key the reader translates, with
// its new key, on one line.
func TestMigratingDocListsLegacyKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "MIGRATING.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range legacyKeys {
		sec, key, _ := strings.Cut(l.old, ".")
		want := []string{"`[" + sec + "] " + key + "`"}
		if l.new != "" {
			nsec, nkey, _ := strings.Cut(l.new, ".")
			want = append(want, "`["+nsec+"] "+nkey+"`")
		} else {
			want = append(want, "ignored")
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			ok := strings.HasPrefix(line, "|")
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			found = found || ok
		}
		if !found {
			t.Errorf("docs/MIGRATING.md has no table row with %q", want)
		}
	}
}
