package setting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func shippedConf(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../conf.ini")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShippedDefaults(t *testing.T) {
	c, err := Load(shippedConf(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPPort != 7800 || c.Server.RPCPort != 7900 {
		t.Errorf("ports %d %d", c.Server.HTTPPort, c.Server.RPCPort)
	}
	if c.WebSocket.PingInterval != 25*time.Second || c.WebSocket.PongWait != 60*time.Second ||
		c.WebSocket.WriteTimeout != 10*time.Second || c.WebSocket.ReadLimit != 8192 {
		t.Errorf("websocket %+v", c.WebSocket)
	}
	if !c.WebSocket.MembershipEvents || c.Server.MaxBodyBytes != 1<<20 || c.Log.Level != "info" {
		t.Errorf("config %+v", c)
	}
	if len(c.Security.AllowedOrigins) != 1 || c.Security.AllowedOrigins[0] != "*" {
		t.Errorf("origins %v", c.Security.AllowedOrigins)
	}
	// The file and the built-in defaults must agree, so a node without the
	// file behaves like one with it.
	d, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if d.Server != c.Server || d.Log != c.Log || d.WebSocket.PingInterval != c.WebSocket.PingInterval {
		t.Errorf("defaults differ from conf.ini:\n%+v\n%+v", d, c)
	}
}

func TestEnvOverride(t *testing.T) {
	t.Setenv("GOWS_SERVER_HTTPPORT", "8123")
	t.Setenv("GOWS_WEBSOCKET_PINGINTERVAL", "1500ms")
	t.Setenv("GOWS_WEBSOCKET_EVENTSOFFSYSTEMS", "a, b")
	c, err := Load(shippedConf(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPPort != 8123 || c.WebSocket.PingInterval != 1500*time.Millisecond {
		t.Errorf("override not applied: %+v", c.Server)
	}
	if strings.Join(c.WebSocket.EventsOffSystems, "|") != "a|b" {
		t.Errorf("list %q", c.WebSocket.EventsOffSystems)
	}
}

func TestBadValuesNameTheKey(t *testing.T) {
	cases := []struct{ env, val, key string }{
		{"GOWS_SERVER_HTTPPORT", "70000", "server.httpPort"},
		{"GOWS_SERVER_HTTPPORT", "abc", "server.httpPort"},
		{"GOWS_WEBSOCKET_PINGINTERVAL", "-5s", "websocket.pingInterval"},
		{"GOWS_WEBSOCKET_PONGWAIT", "soon", "websocket.pongWait"},
		{"GOWS_WEBSOCKET_QUEUELENGTH", "0", "websocket.queueLength"},
		{"GOWS_LOG_LEVEL", "loud", "log.level"},
		{"GOWS_LOG_FORMAT", "xml", "log.format"},
		{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS", "maybe", "websocket.membershipEvents"},
		{"GOWS_SERVER_DRAINTIMEOUT", "-1s", "server.drainTimeout"},
		{"GOWS_CLUSTER_ENABLED", "true", "cluster.secret"},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.val, func(t *testing.T) {
			t.Setenv(c.env, c.val)
			_, err := Load(shippedConf(t))
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("error %v does not name %s", err, c.key)
			}
		})
	}
}

func TestUnknownKeyAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.ini")
	if err := os.WriteFile(p, []byte("[server]\nhttpPortt = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "server.httpportt") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.ini")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzINI(f *testing.F) {
	shipped, err := os.ReadFile("../../conf.ini")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(shipped)
	f.Add([]byte("[server]\nhttpPort = 1\n"))
	f.Add([]byte("key = outside\n"))
	f.Add([]byte("[a.b]\nx=1\n[server]\nhttpPort=1\nhttpPort=2\n"))
	f.Add([]byte("\ufeff[log]\nlevel = \"debug\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := map[string]any{}
		if err := decodeINI(b, v); err != nil {
			return
		}
		for section, keys := range v {
			if section == "" || strings.ContainsAny(section, ". ") {
				t.Fatalf("accepted section %q", section)
			}
			for k := range keys.(map[string]any) {
				if k == "" || strings.ContainsAny(k, ". []") {
					t.Fatalf("accepted key %q", k)
				}
			}
		}
		// A decodable file must load or fail with a message naming a key,
		// never panic.
		p := filepath.Join(t.TempDir(), "c.ini")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err != nil && !strings.Contains(err.Error(), "config key") && !strings.Contains(err.Error(), "read config") {
			t.Fatalf("error without a key: %v", err)
		}
	})
}
