// Package setting loads the node's configuration from conf.ini and the
// environment (GOWS_<SECTION>_<KEY>) with viper, and validates it.
package setting

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment override: GOWS_SERVER_HTTPPORT.
const EnvPrefix = "GOWS"

// Config is the whole validated configuration.
type Config struct {
	Server    Server
	WebSocket WebSocket
	Security  Security
	Log       Log
	Cluster   Cluster
}

// Server is the [server] section.
type Server struct {
	Host         string
	HTTPPort     int
	RPCPort      int
	DataDir      string
	Secret       string
	DrainTimeout time.Duration
	MaxBodyBytes int64
	Pprof        bool
}

// WebSocket is the [websocket] section.
type WebSocket struct {
	PingInterval            time.Duration
	PongWait                time.Duration
	WriteTimeout            time.Duration
	WriteDelay              time.Duration
	QueueLength             int
	ReadLimit               int64
	MembershipEvents        bool
	EventsOffSystems        []string
	MaxConnections          int
	MaxConnectionsPerSystem int
}

// Security is the [security] section.
type Security struct {
	APITokens      []string
	ConnectSecret  string
	AllowedOrigins []string
	RateLimit      float64
	RateBurst      int
}

// Log is the [log] section.
type Log struct {
	Level  string
	Format string
}

// Cluster is the [cluster] section.
type Cluster struct {
	Enabled         bool
	EtcdEndpoints   []string
	EtcdDialTimeout time.Duration
	EtcdUsername    string
	EtcdPassword    string
	EtcdCertFile    string
	EtcdKeyFile     string
	EtcdCAFile      string
	RPCAdvertise    string
	HTTPAdvertise   string
	LeaseTTL        int
	KeyPrefix       string
	Secret          string
	RPCTimeout      time.Duration
}

// defaults mirror the shipped conf.ini, so a node runs even without the file's keys.
var defaults = map[string]any{
	"server.host":                       "0.0.0.0",
	"server.httpport":                   7800,
	"server.rpcport":                    7900,
	"server.datadir":                    "./data",
	"server.secret":                     "",
	"server.draintimeout":               "10s",
	"server.maxbodybytes":               1 << 20,
	"server.pprof":                      false,
	"websocket.pinginterval":            "25s",
	"websocket.pongwait":                "60s",
	"websocket.writetimeout":            "10s",
	"websocket.writedelay":              "0s",
	"websocket.queuelength":             256,
	"websocket.readlimit":               8192,
	"websocket.membershipevents":        true,
	"websocket.eventsoffsystems":        "",
	"websocket.maxconnections":          0,
	"websocket.maxconnectionspersystem": 0,
	"security.apitokens":                "",
	"security.connectsecret":            "",
	"security.allowedorigins":           "*",
	"security.ratelimit":                0,
	"security.rateburst":                0,
	"log.level":                         "info",
	"log.format":                        "console",
	"cluster.enabled":                   false,
	"cluster.etcdendpoints":             "127.0.0.1:2379",
	"cluster.etcddialtimeout":           "5s",
	"cluster.etcdusername":              "",
	"cluster.etcdpassword":              "",
	"cluster.etcdcertfile":              "",
	"cluster.etcdkeyfile":               "",
	"cluster.etcdcafile":                "",
	"cluster.rpcadvertise":              "",
	"cluster.httpadvertise":             "",
	"cluster.leasettl":                  5,
	"cluster.keyprefix":                 "/go-websocket",
	"cluster.secret":                    "",
	"cluster.rpctimeout":                "2s",
}

// Keys lists every configuration key (section.key, lower case).
func Keys() []string {
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	return keys
}

// Load reads path (an ini file; "" means defaults and environment only) and
// the environment, and validates the result. Errors name the offending key.
func Load(path string) (*Config, error) {
	v := newViper()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("ini")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	for _, k := range v.AllKeys() {
		if _, ok := defaults[k]; !ok && strings.Contains(k, ".") {
			return nil, fmt.Errorf("config key %s: unknown key (check its spelling)", k)
		}
	}
	p := &parser{v: v}
	c := &Config{
		Server: Server{
			Host:         p.str("server.host"),
			HTTPPort:     p.port("server.httpport"),
			RPCPort:      p.port("server.rpcport"),
			DataDir:      p.str("server.datadir"),
			Secret:       p.str("server.secret"),
			DrainTimeout: p.dur("server.draintimeout", true),
			MaxBodyBytes: int64(p.intMin("server.maxbodybytes", 1)),
			Pprof:        p.boolean("server.pprof"),
		},
		WebSocket: WebSocket{
			PingInterval:            p.dur("websocket.pinginterval", false),
			PongWait:                p.dur("websocket.pongwait", false),
			WriteTimeout:            p.dur("websocket.writetimeout", false),
			WriteDelay:              p.dur("websocket.writedelay", true),
			QueueLength:             p.intMin("websocket.queuelength", 1),
			ReadLimit:               int64(p.intMin("websocket.readlimit", 1)),
			MembershipEvents:        p.boolean("websocket.membershipevents"),
			EventsOffSystems:        p.list("websocket.eventsoffsystems"),
			MaxConnections:          p.intMin("websocket.maxconnections", 0),
			MaxConnectionsPerSystem: p.intMin("websocket.maxconnectionspersystem", 0),
		},
		Security: Security{
			APITokens:      p.list("security.apitokens"),
			ConnectSecret:  p.str("security.connectsecret"),
			AllowedOrigins: p.list("security.allowedorigins"),
			RateLimit:      p.float("security.ratelimit"),
			RateBurst:      p.intMin("security.rateburst", 0),
		},
		Log: Log{
			Level:  p.oneOf("log.level", "debug", "info", "warn", "error"),
			Format: p.oneOf("log.format", "console", "json"),
		},
		Cluster: Cluster{
			Enabled:         p.boolean("cluster.enabled"),
			EtcdEndpoints:   p.list("cluster.etcdendpoints"),
			EtcdDialTimeout: p.dur("cluster.etcddialtimeout", false),
			EtcdUsername:    p.str("cluster.etcdusername"),
			EtcdPassword:    p.str("cluster.etcdpassword"),
			EtcdCertFile:    p.str("cluster.etcdcertfile"),
			EtcdKeyFile:     p.str("cluster.etcdkeyfile"),
			EtcdCAFile:      p.str("cluster.etcdcafile"),
			RPCAdvertise:    p.str("cluster.rpcadvertise"),
			HTTPAdvertise:   p.str("cluster.httpadvertise"),
			LeaseTTL:        p.intMin("cluster.leasettl", 1),
			KeyPrefix:       p.str("cluster.keyprefix"),
			Secret:          p.str("cluster.secret"),
			RPCTimeout:      p.dur("cluster.rpctimeout", false),
		},
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
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
	}
	return nil
}

// parser converts keys and remembers the first error, named by its key.
type parser struct {
	v   *viper.Viper
	err error
}

func (p *parser) fail(key, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("config key %s: %s", displayKey(key), fmt.Sprintf(format, args...))
	}
}

func (p *parser) raw(key string) string {
	return strings.TrimSpace(fmt.Sprint(p.v.Get(key)))
}

func (p *parser) str(key string) string { return p.raw(key) }

func (p *parser) list(key string) []string {
	var out []string
	for _, s := range strings.Split(p.raw(key), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) integer(key string) (int, bool) {
	var n int
	s := p.raw(key)
	if _, err := fmt.Sscan(s, &n); err != nil || fmt.Sprint(n) != strings.TrimPrefix(s, "+") {
		p.fail(key, "%q is not an integer", s)
		return 0, false
	}
	return n, true
}

func (p *parser) intMin(key string, min int) int {
	n, ok := p.integer(key)
	if ok && n < min {
		p.fail(key, "%d is below the minimum %d", n, min)
	}
	return n
}

func (p *parser) port(key string) int {
	n, ok := p.integer(key)
	if ok && (n < 1 || n > 65535) {
		p.fail(key, "%d is not a port (1-65535)", n)
	}
	return n
}

func (p *parser) float(key string) float64 {
	var f float64
	s := p.raw(key)
	if _, err := fmt.Sscan(s, &f); err != nil {
		p.fail(key, "%q is not a number", s)
	}
	return f
}

func (p *parser) dur(key string, allowZero bool) time.Duration {
	s := p.raw(key)
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.fail(key, "%q is not a duration (e.g. 500ms, 25s, 2m)", s)
	case d < 0 || (d == 0 && !allowZero):
		p.fail(key, "%s must be positive", s)
	}
	return d
}

func (p *parser) boolean(key string) bool {
	switch strings.ToLower(p.raw(key)) {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off", "":
		return false
	}
	p.fail(key, "%q is not a boolean (true or false)", p.raw(key))
	return false
}

func (p *parser) oneOf(key string, allowed ...string) string {
	s := strings.ToLower(p.raw(key))
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	p.fail(key, "%q is not one of %s", p.raw(key), strings.Join(allowed, ", "))
	return s
}

// displayKey restores the camelCase spelling of conf.ini for messages.
func displayKey(key string) string {
	if d, ok := display[key]; ok {
		return d
	}
	return key
}

var display = func() map[string]string {
	names := []string{
		"server.host", "server.httpPort", "server.rpcPort", "server.dataDir", "server.secret",
		"server.drainTimeout", "server.maxBodyBytes", "server.pprof", "websocket.pingInterval", "websocket.pongWait",
		"websocket.writeTimeout", "websocket.writeDelay", "websocket.queueLength", "websocket.readLimit",
		"websocket.membershipEvents", "websocket.eventsOffSystems", "websocket.maxConnections",
		"websocket.maxConnectionsPerSystem", "security.apiTokens", "security.connectSecret",
		"security.allowedOrigins", "security.rateLimit", "security.rateBurst", "log.level",
		"log.format", "cluster.enabled", "cluster.etcdEndpoints", "cluster.etcdDialTimeout",
		"cluster.etcdUsername", "cluster.etcdPassword", "cluster.etcdCertFile", "cluster.etcdKeyFile",
		"cluster.etcdCAFile", "cluster.rpcAdvertise", "cluster.httpAdvertise", "cluster.leaseTTL",
		"cluster.keyPrefix", "cluster.secret", "cluster.rpcTimeout",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}()
