// Command go-websocket runs one node of the WebSocket push service.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/go-websocket/go-websocket/pkg/limiter"
	"github.com/go-websocket/go-websocket/pkg/logger"
	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/pkg/setting"
	"github.com/go-websocket/go-websocket/pkg/tlscert"
	"github.com/go-websocket/go-websocket/routers"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/cluster"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/servers/webhook"
	"github.com/go-websocket/go-websocket/web"
)

// release is the version of this source tree. version is set at build time
// with -ldflags "-X main.version=..." (git describe); when that names no
// release tag (a bare commit, "dev" or nothing), --version shows release with
// the build's own version beside it.
const release = "v0.2.0"

var version = release

// versionString is what --version and the start-up log show.
func versionString() string {
	switch {
	case strings.HasPrefix(version, "v"):
		return version
	default:
		return release + " (" + version + ")"
	}
}

const usage = `go-websocket: a distributed WebSocket push service.

Usage:
  go-websocket [-c conf.ini]
  go-websocket --version

Backends POST JSON to /api/websocket/<endpoint> to push to one client, a
group or a whole system; browsers connect to /api/websocket/ws?systemId=S.

Flags:
  -c path     configuration file (default: conf.ini beside the binary, then
              ./conf.ini, then ./conf/app.ini; without one, built-in
              defaults apply)
  --version   print the version and exit
  --help      print this help and exit

Every configuration key can be overridden by an environment variable
GOWS_<SECTION>_<KEY>, e.g. GOWS_SERVER_HTTPPORT=8000; a GOWS_ variable that
names no key stops start-up. Durations use Go syntax (500ms, 25s, 2m).

Configuration keys (conf.ini: [section] key = default, environment variable):
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("go-websocket", flag.ContinueOnError)
	// The flag package prints a parse error itself; usage goes to stdout,
	// once, only when asked for.
	fs.Usage = func() {}
	confPath := fs.String("c", "", "configuration file")
	showVersion := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(os.Stdout, usage+setting.Help())
			return 0
		}
		fmt.Fprintln(os.Stderr, "go-websocket --help shows the usage")
		return 2
	}
	if *showVersion {
		fmt.Println("go-websocket", versionString())
		return 0
	}
	path := *confPath
	if path == "" {
		path = defaultConfPath()
	}
	cfg, err := setting.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-websocket: bad configuration:", err)
		return 1
	}
	log, err := logger.New(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-websocket:", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	if err := serve(cfg, path, log); err != nil {
		// The message says what went wrong; a stack trace of main would
		// only hide it.
		log.WithOptions(zap.AddStacktrace(zapcore.FatalLevel)).Error("go-websocket stopped", zap.Error(err))
		return 1
	}
	return 0
}

// defaultConfPath prefers conf.ini beside the binary, then in the working
// directory, then the conf/app.ini of woodylan/go-websocket (its keys are
// read with a warning each); "" when none exists.
func defaultConfPath() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "conf.ini")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, p := range []string{"conf.ini", filepath.Join("conf", "app.ini")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func serve(cfg *setting.Config, confPath string, log *zap.Logger) error {
	if err := os.MkdirAll(cfg.Server.DataDir, 0o700); err != nil {
		return fmt.Errorf("config key server.dataDir: %w", err)
	}
	secret, err := loadSecret(cfg)
	if err != nil {
		return err
	}
	m := metrics.New()
	var systems store.Systems
	var cl *cluster.Mode
	if cfg.Cluster.Enabled {
		if cl, err = cluster.Open(context.Background(), cfg, version, m, log); err != nil {
			return err
		}
		defer cl.Close()
		systems = cl.Systems
	} else if systems, err = store.OpenFile(filepath.Join(cfg.Server.DataDir, "systems.json")); err != nil {
		return err
	}
	ws := cfg.WebSocket
	connect := servers.ConnectPolicy{AllowedOrigins: cfg.Security.AllowedOrigins, Subprotocols: ws.Subprotocols}
	if cfg.Security.ConnectSecret != "" {
		connect.Authenticate = servers.TokenAuthenticator([]byte(cfg.Security.ConnectSecret))
	}
	hooks := webhook.New(webhook.Config{Timeout: cfg.Webhook.Timeout, QueueSize: cfg.Webhook.QueueSize,
		AllowHosts: cfg.Webhook.AllowHosts, UpstreamRate: cfg.Webhook.UpstreamRate, UpstreamBurst: cfg.Webhook.UpstreamBurst},
		systems.Settings, m.Registry, log.Named("webhook"))
	node := servers.NewNode(servers.Options{
		Hub: servers.HubConfig{
			PingInterval: ws.PingInterval, PongWait: ws.PongWait, WriteTimeout: ws.WriteTimeout,
			WriteDelay:  ws.WriteDelay,
			QueueLength: ws.QueueLength, ReadLimit: ws.ReadLimit,
			MaxConnections: ws.MaxConnections, MaxConnectionsPerSystem: ws.MaxConnectionsPerSystem,
			SessionTTL: ws.SessionTTL, Compression: ws.Compression,
		},
		MembershipEvents: ws.MembershipEvents,
		EventsOffSystems: ws.EventsOffSystems,
		Secret:           secret,
		Systems:          systems,
		Metrics:          m,
		Logger:           log,
		Connect:          connect,
		Webhooks:         hooks,
		EventTimeout:     cfg.Cluster.RPCTimeout / 2,
	})
	var ready func() error
	if cl != nil {
		ready = cl.Ready
	}
	var rateLimit func(string) (bool, time.Duration)
	if cfg.Security.RateLimit > 0 {
		rateLimit = limiter.New(cfg.Security.RateLimit, cfg.Security.RateBurst).Allow
	}
	engine := routers.New(routers.Options{
		Node: node, Logger: log, Metrics: m,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		APITokens:    cfg.Security.APITokens,
		Ready:        ready,
		RateLimit:    rateLimit,
		Pprof:        cfg.Server.Pprof,
		Extra: func(e *gin.Engine, protect gin.HandlerFunc) {
			web.Register(e, web.Options{
				Protect: protect, Stats: node, APIOpen: len(cfg.Security.APITokens) == 0,
				DemoPage: cfg.Server.DemoPage, Dashboard: cfg.Server.Dashboard,
				DashboardToken: cfg.Security.DashboardToken, Cluster: cfg.Cluster.Enabled,
			})
		},
	})
	addr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.HTTPPort))
	// No TCP keep-alive probes on accepted connections: WebSocket clients
	// are pinged by the node, and skipping the socket options saves system
	// calls on every connect.
	lc := net.ListenConfig{KeepAlive: -1}
	var certs *tlscert.Holder
	if cfg.Server.TLSCert != "" {
		if certs, err = tlscert.Load(cfg.Server.TLSCert, cfg.Server.TLSKey); err != nil {
			return fmt.Errorf("config key server.tlsCert: %w", err)
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s (config key server.httpPort): the port is already in use by another process: stop it or choose another port", addr)
		}
		return fmt.Errorf("listen on %s (config key server.httpPort): %w", addr, err)
	}
	node.SetHTTPAddr(advertisedHTTP(cfg, ln.Addr()))
	if cl != nil {
		if err := cl.Attach(node); err != nil {
			ln.Close()
			return err
		}
	}
	if certs != nil {
		ln = tls.NewListener(ln, certs.Config())
	} else {
		// Go's own answers to malformed requests carry the JSON envelope too.
		ln = routers.JSONErrors(ln)
	}
	srv := &http.Server{
		Handler:           engine,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		// HTTP/1.1 only over TLS too: a WebSocket upgrade needs it.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	warnOpen(cfg, log)
	log.Info("go-websocket started",
		zap.String("version", versionString()), zap.String("config", confPath), zap.String("http", ln.Addr().String()),
		zap.String("node", node.ID().String()), zap.String("dataDir", cfg.Server.DataDir),
		zap.Bool("cluster", cfg.Cluster.Enabled), zap.Bool("tls", certs != nil))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
wait:
	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("http server: %w", err)
		case s := <-sig:
			if s == syscall.SIGHUP {
				reloadTLS(certs, log)
				continue
			}
			log.Info("shutting down", zap.String("signal", s.String()), zap.Stringer("drainTimeout", cfg.Server.DrainTimeout))
			break wait
		}
	}
	deadline := time.Now().Add(cfg.Server.DrainTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if cl != nil {
		// Leave etcd first so peers and the load balancer stop routing here.
		cl.Leave(ctx)
	}
	// Stop accepting first, then close the WebSocket clients with 1001.
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(ctx) }()
	node.Shutdown(deadline)
	// The disconnect events of the clients just closed are posted until
	// the deadline.
	hooks.Close(ctx)
	if err := <-shutdownDone; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", zap.Error(err))
	}
	log.Info("stopped")
	return nil
}

// reloadTLS reads the listener's certificate files again (SIGHUP): new
// handshakes get the new certificate, open connections stay. A pair that
// does not load leaves the current one in use.
func reloadTLS(certs *tlscert.Holder, log *zap.Logger) {
	if certs == nil {
		log.Info("SIGHUP: nothing to reload (no server.tlsCert)")
		return
	}
	if err := certs.Reload(); err != nil {
		log.Warn("SIGHUP: the TLS certificate was not reloaded; the current one stays in use",
			zap.Error(err), zap.Time("notAfter", certs.NotAfter()))
		return
	}
	log.Info("SIGHUP: TLS certificate reloaded", zap.Time("notAfter", certs.NotAfter()))
}

// advertisedHTTP is the HTTP address shown to peers and on the dashboard.
func advertisedHTTP(cfg *setting.Config, bound net.Addr) string {
	if cfg.Cluster.HTTPAdvertise != "" {
		return cfg.Cluster.HTTPAdvertise
	}
	if a, ok := bound.(*net.TCPAddr); ok && a.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return bound.String()
}

// loadSecret returns the clientId MAC key: the cluster secret, the
// configured one, or one generated into dataDir/secret on first start.
func loadSecret(cfg *setting.Config) ([]byte, error) {
	if cfg.Cluster.Enabled {
		return []byte(cfg.Cluster.Secret), nil
	}
	if cfg.Server.Secret != "" {
		return []byte(cfg.Server.Secret), nil
	}
	p := filepath.Join(cfg.Server.DataDir, "secret")
	b, err := os.ReadFile(p)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 16 {
			return nil, fmt.Errorf("secret file %s is too short; remove it to generate a new one", p)
		}
		return []byte(s), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(raw[:])
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write secret file: %w", err)
	}
	return []byte(s), nil
}

func warnOpen(cfg *setting.Config, log *zap.Logger) {
	if len(cfg.Security.APITokens) == 0 {
		log.Warn("!!! the HTTP API is open to anyone who can reach this port: set [security] apiTokens in production")
	}
	if cfg.Security.ConnectSecret == "" {
		log.Warn("!!! anyone may open a WebSocket for any registered system: set [security] connectSecret to require connect tokens")
	}
	for _, o := range cfg.Security.AllowedOrigins {
		if o == "*" {
			log.Warn("!!! browsers from any origin may connect: set [security] allowedOrigins")
		}
	}
}
