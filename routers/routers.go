// Package routers builds the gin engine: both path sets (/api/websocket/*
// and the legacy /api/* and /ws), and the middleware every API call passes:
// request id, recovery, request log, metrics, API token, body limit, systemId.
package routers

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/api"
	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers"
)

// Node is what the routers need of the node besides the API service.
type Node interface {
	api.Service
	SystemExists(systemID string) bool
	ServeWS(w http.ResponseWriter, r *http.Request)
}

// Options configures the engine.
type Options struct {
	Node         Node
	Logger       *zap.Logger
	Metrics      *metrics.Metrics
	MaxBodyBytes int64
	// APITokens: when non-empty, API calls need "Authorization: Bearer <one of them>".
	APITokens []string
	// RateLimit, when set, is asked for every API call of a system; false
	// refuses it with 10010 and the Retry-After seconds.
	RateLimit func(systemID string) (ok bool, retryAfter time.Duration)
	// Ready reports whether the node can serve (cluster: registered in etcd).
	Ready func() error
	// Pprof serves Go's profiler under /debug/pprof/ (behind the API token).
	Pprof bool
	// Extra registers further routes (the web pages, the stats endpoint).
	Extra func(e *gin.Engine, protect gin.HandlerFunc)
}

// Prefix is the path of the API.
const Prefix = "/api/websocket/"

// New builds the engine.
func New(o Options) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true

	m := &mw{o: o, prefix: fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)}
	e.Use(m.requestID, m.recovery, m.accessLog)

	h := api.New(o.Node, o.Logger)
	for _, base := range []string{Prefix, "/api/"} {
		for _, ep := range h.Endpoints() {
			chain := []gin.HandlerFunc{m.metrics(ep.Name), m.auth, m.bodyLimit}
			if ep.NeedsSystem {
				chain = append(chain, m.system)
			}
			e.POST(base+ep.Name, append(chain, ep.Handler)...)
		}
	}
	e.GET(Prefix+"ws", m.ws)
	e.GET(Prefix+"openapi.json", h.OpenAPI)
	e.GET("/ws", m.ws)
	e.GET("/healthz", func(c *gin.Context) { api.OK(c, gin.H{"status": "alive"}) })
	e.GET("/readyz", func(c *gin.Context) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				api.Fail(c, o.Logger, define.Errorf(define.CodeUnavailable, "not ready: %v", err))
				return
			}
		}
		api.OK(c, gin.H{"status": "ready"})
	})
	e.GET("/metrics", gin.WrapH(o.Metrics.Handler()))
	if o.Pprof {
		e.GET("/debug/pprof/*name", m.auth, gin.WrapF(func(w http.ResponseWriter, r *http.Request) {
			switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
			case "profile":
				pprof.Profile(w, r)
			case "trace":
				pprof.Trace(w, r)
			case "symbol":
				pprof.Symbol(w, r)
			case "cmdline":
				pprof.Cmdline(w, r)
			default:
				pprof.Index(w, r)
			}
		}))
	}
	if o.Extra != nil {
		o.Extra(e, m.auth)
	}
	e.NoRoute(func(c *gin.Context) {
		api.Fail(c, o.Logger, &define.Error{Code: define.CodeInvalidRequest, Status: http.StatusNotFound,
			Msg: "no such endpoint: " + c.Request.Method + " " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		api.Fail(c, o.Logger, define.Errorf(define.CodeMethodNotAllowed,
			"method %s not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	return e
}

type mw struct {
	o      Options
	prefix string
	seq    atomic.Uint64
}

func (m *mw) requestID(c *gin.Context) {
	id := m.prefix + "-" + strconv.FormatUint(m.seq.Add(1), 36)
	c.Set(api.KeyRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

// recovery turns a panic into 10011 and a log line with the request id.
func (m *mw) recovery(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			api.Fail(c, m.o.Logger, fmt.Errorf("panic: %v", r))
		}
	}()
	c.Next()
}

// accessLog writes one line per request (never one per delivered message).
func (m *mw) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	ce := m.o.Logger.Check(zap.InfoLevel, "request")
	if ce == nil {
		return // fields are not even built when info is off
	}
	code, _ := c.Get(api.KeyErrCode)
	status := c.Writer.Status()
	if v, ok := c.Get(keyStatus); ok {
		status, _ = v.(int)
	}
	ce.Write(
		zap.String("method", c.Request.Method),
		zap.String("path", c.Request.URL.Path),
		zap.Int("status", status),
		zap.Any("code", code),
		zap.Duration("latency", time.Since(start)),
		zap.String("systemId", c.GetString(api.KeySystemID)),
		zap.String("requestId", c.GetString(api.KeyRequestID)),
		zap.String("remote", c.ClientIP()),
	)
}

func (m *mw) metrics(endpoint string) gin.HandlerFunc {
	lat := m.o.Metrics.APILatency.WithLabelValues(endpoint)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		lat.Observe(time.Since(start).Seconds())
		code := c.GetInt(api.KeyErrCode)
		m.o.Metrics.APIRequests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	}
}

// auth checks the API token in constant time when tokens are configured.
func (m *mw) auth(c *gin.Context) {
	if len(m.o.APITokens) == 0 {
		return
	}
	got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	valid := 0
	for _, t := range m.o.APITokens {
		valid |= subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(t))
	}
	if !ok || valid != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="go-websocket"`)
		api.Fail(c, m.o.Logger, define.Errorf(define.CodeUnauthorized, "missing or wrong API token (Authorization: Bearer <token>)"))
		return
	}
}

func (m *mw) bodyLimit(c *gin.Context) {
	if c.Request.ContentLength > m.o.MaxBodyBytes {
		api.Fail(c, m.o.Logger, define.Errorf(define.CodeBodyTooLarge, "request body is larger than %d bytes", m.o.MaxBodyBytes))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, m.o.MaxBodyBytes)
}

// system validates the systemId header and checks it is registered.
func (m *mw) system(c *gin.Context) {
	id := c.GetHeader("systemId")
	switch {
	case id == "":
		api.Fail(c, m.o.Logger, define.Errorf(define.CodeMissingSystemID, "missing systemId header"))
		return
	case !api.ValidName(id):
		api.Fail(c, m.o.Logger, define.Errorf(define.CodeInvalidRequest, "header systemId must be 1-%d characters without control characters", define.MaxNameLen))
		return
	case !m.o.Node.SystemExists(id):
		api.Fail(c, m.o.Logger, define.Errorf(define.CodeUnknownSystem, "systemId %q is not registered", id))
		return
	}
	c.Set(api.KeySystemID, id)
	if m.o.RateLimit != nil {
		if ok, wait := m.o.RateLimit(id); !ok {
			m.o.Metrics.RateLimited.Inc()
			secs := int((wait + time.Second - 1) / time.Second)
			if secs < 1 {
				secs = 1
			}
			c.Header("Retry-After", strconv.Itoa(secs))
			api.Fail(c, m.o.Logger, define.Errorf(define.CodeRateLimited, "rate limit of system %q exceeded; retry after %d s", id, secs))
			return
		}
	}
}

// ws answers a WebSocket upgrade. A plain GET, and a handshake that RFC
// 6455 refuses (HTTP/1.0, no Sec-WebSocket-Key, another version), get the
// JSON 400 before any upgrade; an upgrade is logged with status 101.
func (m *mw) ws(c *gin.Context) {
	if err := servers.CheckUpgrade(c.Request); err != nil {
		c.Header("Sec-WebSocket-Version", "13")
		api.Fail(c, m.o.Logger, err)
		return
	}
	c.Set(api.KeySystemID, c.Query("systemId"))
	rec := &hijackRecorder{ResponseWriter: c.Writer}
	m.o.Node.ServeWS(rec, c.Request)
	if rec.hijacked {
		c.Set(keyStatus, http.StatusSwitchingProtocols)
	}
	c.Abort()
}

// keyStatus overrides the status the access log shows: a hijacked
// connection's 101 is written by the WebSocket library, not through gin.
const keyStatus = "gows.status"

// hijackRecorder notes whether the handler took the connection over.
type hijackRecorder struct {
	http.ResponseWriter
	hijacked bool
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	nc, rw, err := hj.Hijack()
	if err == nil {
		h.hijacked = true
	}
	return nc, rw, err
}
