// Package setting loads the node's configuration from conf.ini and the
// environment (GOWS_<SECTION>_<KEY>) with viper, and validates it.
//
// Every key is declared once, as a field of the section structs below, with
// struct tags:
//
//	ini      the key's name in conf.ini (camelCase); the section is the
//	         ini tag of the section's field in Config
//	default  the built-in default, in conf.ini syntax
//	help     one line for --help
//	min      ints: the smallest accepted value; durations: "0s" allows zero
//	         (durations are otherwise positive)
//	check    "port" (1-65535)
//	oneof    space-separated accepted values (lower case)
//
// Defaults, environment variable names, the --help listing and the INI reader
// all derive from these tags; a test checks that conf.ini documents exactly
// these keys with these defaults.
package setting

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// EnvPrefix prefixes every environment override: GOWS_SERVER_HTTPPORT.
const EnvPrefix = "GOWS"

// Config is the whole validated configuration.
type Config struct {
	Server    Server    `ini:"server"`
	WebSocket WebSocket `ini:"websocket"`
	Security  Security  `ini:"security"`
	Log       Log       `ini:"log"`
	Cluster   Cluster   `ini:"cluster"`
	Webhook   Webhook   `ini:"webhook"`

	warnings []string
}

// Warnings are the start-up notices of the load (keys of an older
// configuration format that were translated or ignored).
func (c *Config) Warnings() []string { return c.warnings }

// Server is the [server] section.
type Server struct {
	Host         string        `ini:"host" default:"0.0.0.0" help:"interface the HTTP/WebSocket listener binds to"`
	HTTPPort     int           `ini:"httpPort" default:"7800" check:"port" help:"HTTP port: API, WebSocket endpoint, /healthz, /readyz, /metrics"`
	RPCPort      int           `ini:"rpcPort" default:"7900" check:"port" help:"RPC port between cluster nodes"`
	DataDir      string        `ini:"dataDir" default:"./data" help:"where the node keeps registered systems and the generated secret"`
	Secret       string        `ini:"secret" default:"" help:"HMAC secret of clientIds (empty: generated into dataDir/secret)"`
	DrainTimeout time.Duration `ini:"drainTimeout" default:"10s" min:"0s" help:"how long a graceful shutdown waits for client queues to drain"`
	MaxBodyBytes int64         `ini:"maxBodyBytes" default:"1048576" min:"1" help:"largest accepted HTTP API request body, in bytes"`
	Pprof        bool          `ini:"pprof" default:"false" help:"serve Go's profiler under /debug/pprof/"`
	DemoPage     bool          `ini:"demoPage" default:"true" help:"serve the demo page at /"`
	Dashboard    bool          `ini:"dashboard" default:"true" help:"serve the operator dashboard at /dashboard"`
	TLSCert      string        `ini:"tlsCert" default:"" help:"PEM certificate (chain) of the HTTP/WebSocket listener (empty: plain HTTP)"`
	TLSKey       string        `ini:"tlsKey" default:"" help:"PEM private key of tlsCert"`
}

// WebSocket is the [websocket] section.
type WebSocket struct {
	PingInterval            time.Duration `ini:"pingInterval" default:"25s" help:"the server pings every client this often"`
	PongWait                time.Duration `ini:"pongWait" default:"60s" help:"a client silent for this long is disconnected"`
	WriteTimeout            time.Duration `ini:"writeTimeout" default:"10s" help:"a write that cannot complete within this time ends the connection"`
	WriteDelay              time.Duration `ini:"writeDelay" default:"0s" min:"0s" help:"hold a client's frames this long to write them in one system call (0: at once)"`
	QueueLength             int           `ini:"queueLength" default:"256" min:"1" help:"frames that may wait for one client (overflow: closed with 1008)"`
	ReadLimit               int64         `ini:"readLimit" default:"8192" min:"1" help:"largest frame a client may send, in bytes (larger: closed with 1009)"`
	MembershipEvents        bool          `ini:"membershipEvents" default:"true" help:"membership events (1001 join / 1002 leave) to group members"`
	EventsOffSystems        []string      `ini:"eventsOffSystems" default:"" help:"comma-separated systemIds without membership events"`
	MaxConnections          int           `ini:"maxConnections" default:"0" min:"0" help:"most WebSocket connections on this node (0: no limit)"`
	MaxConnectionsPerSystem int           `ini:"maxConnectionsPerSystem" default:"0" min:"0" help:"most WebSocket connections of one system on this node (0: no limit)"`
	Subprotocols            []string      `ini:"subprotocols" default:"gows.v1" help:"comma-separated subprotocols; the first one a client offers is selected (none: no Sec-WebSocket-Protocol answer)"`
	SessionTTL              time.Duration `ini:"sessionTTL" default:"0s" min:"0s" help:"keep a dropped client's session this long for a resume with replay (0: sessions off)"`
	Compression             bool          `ini:"compression" default:"false" help:"permessage-deflate with clients that offer it (a broadcast is compressed once)"`
}

// Security is the [security] section.
type Security struct {
	APITokens      []string `ini:"apiTokens" default:"" help:"comma-separated API tokens (empty: the API is open)"`
	ConnectSecret  string   `ini:"connectSecret" default:"" help:"HS256 secret of connect tokens (empty: anyone may connect)"`
	AllowedOrigins []string `ini:"allowedOrigins" default:"*" help:"comma-separated browser origins allowed to connect (* any)"`
	RateLimit      float64  `ini:"rateLimit" default:"0" help:"API requests per second per system (0: no limit)"`
	RateBurst      int      `ini:"rateBurst" default:"0" min:"0" help:"burst of API requests allowed above rateLimit"`
	DashboardToken string   `ini:"dashboardToken" default:"" help:"read-only password of the dashboard (HTTP Basic; empty: the dashboard follows apiTokens)"`
}

// Log is the [log] section.
type Log struct {
	Level  string `ini:"level" default:"info" oneof:"debug info warn error" help:"debug, info, warn or error"`
	Format string `ini:"format" default:"console" oneof:"console json" help:"console (readable) or json"`
}

// Cluster is the [cluster] section.
type Cluster struct {
	Enabled         bool          `ini:"enabled" default:"false" help:"cluster mode: nodes find each other through etcd"`
	EtcdEndpoints   []string      `ini:"etcdEndpoints" default:"127.0.0.1:2379" help:"comma-separated etcd endpoints"`
	EtcdDialTimeout time.Duration `ini:"etcdDialTimeout" default:"5s" help:"how long to wait for etcd at start"`
	EtcdUsername    string        `ini:"etcdUsername" default:"" help:"etcd user name"`
	EtcdPassword    string        `ini:"etcdPassword" default:"" help:"etcd password"`
	EtcdCertFile    string        `ini:"etcdCertFile" default:"" help:"TLS client certificate for etcd"`
	EtcdKeyFile     string        `ini:"etcdKeyFile" default:"" help:"TLS client key for etcd"`
	EtcdCAFile      string        `ini:"etcdCAFile" default:"" help:"CA that signed etcd's certificate"`
	RPCAdvertise    string        `ini:"rpcAdvertise" default:"" help:"host:port other nodes use to reach this node's RPC port"`
	HTTPAdvertise   string        `ini:"httpAdvertise" default:"" help:"host:port shown to peers and on the dashboard for the HTTP port"`
	LeaseTTL        int           `ini:"leaseTTL" default:"5" min:"1" help:"lease TTL of the node's registration in etcd, in seconds"`
	KeyPrefix       string        `ini:"keyPrefix" default:"/go-websocket" help:"prefix of every key this cluster keeps in etcd"`
	Secret          string        `ini:"secret" default:"" help:"secret shared by every node (required in a cluster)"`
	RPCTimeout      time.Duration `ini:"rpcTimeout" default:"2s" help:"deadline of every call to another node"`
	TLSCert         string        `ini:"tlsCert" default:"" help:"mutual TLS on the RPC port: this node's certificate (PEM)"`
	TLSKey          string        `ini:"tlsKey" default:"" help:"mutual TLS on the RPC port: this node's private key (PEM)"`
	TLSCA           string        `ini:"tlsCA" default:"" help:"mutual TLS on the RPC port: the CA that signs every node's certificate (PEM)"`
}

// Webhook is the [webhook] section.
type Webhook struct {
	Timeout       time.Duration `ini:"timeout" default:"5s" help:"deadline of one webhook POST"`
	QueueSize     int           `ini:"queueSize" default:"10000" min:"1" help:"webhook events waiting per system (overflow drops the oldest, counted)"`
	AllowHosts    []string      `ini:"allowHosts" default:"" help:"comma-separated hosts webhooks may post to (.example.com: its subdomains; empty: any)"`
	UpstreamRate  float64       `ini:"upstreamRate" default:"20" help:"upstream messages per second one client may send (above: closed with 1008; 0: no limit)"`
	UpstreamBurst int           `ini:"upstreamBurst" default:"40" min:"0" help:"burst of upstream messages allowed above upstreamRate"`
}

// Keys lists every configuration key (section.key, lower case).
func Keys() []string {
	keys := make([]string, 0, len(fields))
	for _, f := range fields {
		keys = append(keys, f.lower)
	}
	return keys
}

// Load reads path (an ini file; "" means defaults and environment only) and
// the environment, and validates the result. Errors name the offending key
// or environment variable.
func Load(path string) (*Config, error) {
	if err := checkEnv(os.Environ()); err != nil {
		return nil, err
	}
	v := newViper()
	for _, f := range fields {
		v.SetDefault(f.lower, f.Default)
		if err := v.BindEnv(f.lower, f.Env); err != nil {
			return nil, err
		}
	}
	var warnings []string
	if path != "" {
		file, err := readINIFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
		warnings = translateLegacy(file)
		for section, keys := range file {
			for k := range keys.(map[string]any) {
				if _, ok := byLower[section+"."+k]; !ok {
					if section == "common" || section == "etcd" {
						return nil, fmt.Errorf("config key %s.%s: unknown key (check its spelling; of woodylan/go-websocket's conf/app.ini only [common] HttpPort, RPCPort, Cluster, CryptoKey and [etcd] Endpoints are read: docs/MIGRATING.md)", section, k)
					}
					return nil, fmt.Errorf("config key %s.%s: unknown key (check its spelling)", section, k)
				}
			}
		}
		if err := v.MergeConfigMap(file); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	c := &Config{warnings: warnings}
	p := &parser{v: v}
	for _, f := range fields {
		p.set(c, f)
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkEnv refuses a GOWS_ variable that names no key, as a misspelled key
// in conf.ini is refused.
func checkEnv(environ []string) error {
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(name), EnvPrefix+"_") {
			continue
		}
		if _, ok := byEnv[name]; ok {
			continue
		}
		msg := fmt.Sprintf("environment variable %s: unknown key (check its spelling", name)
		if f, ok := byEnv[strings.ToUpper(name)]; ok {
			msg += "; did you mean " + f.Env
		} else if s := suggest(name); s != "" {
			msg += "; did you mean " + s
		}
		return errors.New(msg + ")")
	}
	return nil
}

// suggest names the environment variable closest to name (one edit, a
// missing or extra underscore), or "".
func suggest(name string) string {
	n := strings.ReplaceAll(strings.ToUpper(name), "_", "")
	best, bestD := "", 3
	for _, f := range fields {
		if d := distance(n, strings.ReplaceAll(f.Env, "_", ""), bestD); d < bestD {
			best, bestD = f.Env, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, or limit when it is at
// least limit.
func distance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

func (c *Config) check() error {
	if c.Server.DataDir == "" {
		return errors.New("config key server.dataDir: must not be empty")
	}
	if c.WebSocket.PongWait <= c.WebSocket.PingInterval {
		return fmt.Errorf("config key websocket.pongWait: %s must be longer than websocket.pingInterval (%s)",
			c.WebSocket.PongWait, c.WebSocket.PingInterval)
	}
	if c.WebSocket.WriteDelay > time.Second {
		return fmt.Errorf("config key websocket.writeDelay: %s is too long (at most 1s)", c.WebSocket.WriteDelay)
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		return errors.New("config keys server.tlsCert, server.tlsKey: set both or neither")
	}
	if c.Server.TLSCert != "" {
		if _, err := LoadKeyPair(c.Server.TLSCert, c.Server.TLSKey); err != nil {
			return fmt.Errorf("config key server.tlsCert: %w", err)
		}
	}
	for _, t := range c.Security.APITokens {
		if c.Security.DashboardToken != "" && t == c.Security.DashboardToken {
			return errors.New("config key security.dashboardToken: must differ from every API token (it is read-only)")
		}
	}
	if c.Webhook.UpstreamRate < 0 {
		return errors.New("config key webhook.upstreamRate: must not be negative")
	}
	if c.Security.RateLimit < 0 {
		return errors.New("config key security.rateLimit: must not be negative")
	}
	if c.Cluster.Enabled {
		if c.Cluster.Secret == "" {
			return errors.New("config key cluster.secret: required when cluster.enabled = true")
		}
		if len(c.Cluster.EtcdEndpoints) == 0 {
			return errors.New("config key cluster.etcdEndpoints: required when cluster.enabled = true")
		}
		tls := []string{c.Cluster.EtcdCertFile, c.Cluster.EtcdKeyFile, c.Cluster.EtcdCAFile}
		set := 0
		for _, f := range tls {
			if f != "" {
				set++
				if _, err := os.Stat(f); err != nil {
					return fmt.Errorf("config key cluster.etcd TLS file: %w", err)
				}
			}
		}
		if set != 0 && set != 3 {
			return errors.New("config keys cluster.etcdCertFile, etcdKeyFile, etcdCAFile: set all three or none")
		}
		rpcTLS := 0
		for _, f := range []string{c.Cluster.TLSCert, c.Cluster.TLSKey, c.Cluster.TLSCA} {
			if f != "" {
				rpcTLS++
			}
		}
		if rpcTLS != 0 && rpcTLS != 3 {
			return errors.New("config keys cluster.tlsCert, tlsKey, tlsCA: set all three or none")
		}
	}
	return nil
}

// LoadKeyPair reads a PEM certificate (chain) and its private key, naming
// the file that is wrong.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, err
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s / %s: %w", certFile, keyFile, err)
	}
	return &c, nil
}
