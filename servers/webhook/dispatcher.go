package webhook

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/go-websocket/go-websocket/servers/store"
)

// Config tunes delivery. Zero fields take the defaults in parentheses.
type Config struct {
	Timeout    time.Duration // one POST (5 s)
	QueueSize  int           // events waiting per system; overflow drops the oldest (10,000)
	AllowHosts []string      // hosts a webhook may post to (empty: any)
	MaxBatch   int           // events per POST (100)
	Linger     time.Duration // how long the first event of a batch waits for more (50 ms)
	RetryFor   time.Duration // how long a batch is retried before it is dropped (5 min)
	MaxBackoff time.Duration // longest wait between two tries (10 s)
	// SettingsTTL: how long a system's settings read from the store are
	// used before they are read again (1 s).
	SettingsTTL time.Duration
	// UpstreamRate and UpstreamBurst bound the upstream messages of one
	// client (per second; 0: no limit). They are enforced by the node.
	UpstreamRate  float64
	UpstreamBurst int
}

func (c *Config) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100
	}
	if c.Linger <= 0 {
		c.Linger = 50 * time.Millisecond
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 5 * time.Minute
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.SettingsTTL <= 0 {
		c.SettingsTTL = time.Second
	}
}

// SettingsFunc reads a system's settings (store.SettingsStore.Settings).
type SettingsFunc func(ctx context.Context, systemID string) (store.Settings, bool, error)

// Dispatcher queues events per system and posts them. Publish never blocks
// on the network: a slow or dead receiver costs WebSocket delivery nothing.
type Dispatcher struct {
	cfg      Config
	settings SettingsFunc
	log      *zap.Logger
	client   *http.Client

	idPrefix string
	seq      atomic.Uint64

	mu      sync.Mutex
	systems map[string]*queue
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}

	upMu     sync.Mutex
	upstream map[string]*rate.Limiter // clientId: its upstream message bucket

	posted  *prometheus.CounterVec
	retried *prometheus.CounterVec
	dropped *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// New builds a dispatcher; reg (may be nil) receives its metrics.
func New(cfg Config, settings SettingsFunc, reg prometheus.Registerer, log *zap.Logger) *Dispatcher {
	cfg.defaults()
	if log == nil {
		log = zap.NewNop()
	}
	var raw [6]byte
	_, _ = crand.Read(raw[:])
	d := &Dispatcher{
		cfg: cfg, settings: settings, log: log,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// A redirect is not a 2xx: the batch is retried, never posted
			// to a host the allow-list has not seen.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		idPrefix: hex.EncodeToString(raw[:]),
		systems:  map[string]*queue{},
		upstream: map[string]*rate.Limiter{},
		stop:     make(chan struct{}),
		posted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_webhook_posted_total", Help: "Webhook events posted and acknowledged with a 2xx, per system.",
		}, []string{"system"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_webhook_retries_total", Help: "Webhook POSTs that failed and were tried again, per system.",
		}, []string{"system"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_webhook_dropped_total", Help: "Webhook events dropped, per system and reason (queue_full, expired, shutdown).",
		}, []string{"system", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gows_webhook_latency_seconds", Help: "Time from an event to the 2xx of the POST that carried it, per system.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60, 300},
		}, []string{"system"}),
	}
	if reg != nil {
		reg.MustRegister(d.posted, d.retried, d.dropped, d.latency)
	}
	return d
}

// Config returns the dispatcher's configuration (defaults filled in).
func (d *Dispatcher) Config() Config { return d.cfg }

// queue is one system's pending events and its sender.
type queue struct {
	systemID string
	// mask: bit 0 says the settings are known; bit i+1 that Events[i] is
	// subscribed. Publish reads it without a lock.
	mask atomic.Uint32

	mu     sync.Mutex
	events []Event
	first  time.Time // when the oldest queued event arrived
	wake   chan struct{}

	set    store.Settings
	loaded time.Time
}

const maskKnown = 1

func bit(typ string) uint32 {
	if i := slices.Index(Events, typ); i >= 0 {
		return 1 << (i + 1)
	}
	return 0
}

func maskOf(s store.Settings) uint32 {
	m := uint32(maskKnown)
	if s.WebhookURL == "" {
		return m
	}
	for _, e := range s.WebhookEvents {
		m |= bit(e)
	}
	return m
}

// queueFor returns the system's queue, starting its sender on first use.
func (d *Dispatcher) queueFor(systemID string) *queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q := d.systems[systemID]; q != nil || d.closed {
		return q
	}
	q := &queue{systemID: systemID, wake: make(chan struct{}, 1)}
	d.systems[systemID] = q
	d.wg.Add(1)
	go d.run(q)
	return q
}

func (d *Dispatcher) lookup(systemID string) *queue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.systems[systemID]
}

// Wants reports whether an event of typ may be posted for systemID; false
// only when the system's settings are known and do not subscribe to it.
// Callers use it to skip building costly events.
func (d *Dispatcher) Wants(systemID, typ string) bool {
	q := d.lookup(systemID)
	if q == nil {
		return true
	}
	m := q.mask.Load()
	return m&maskKnown == 0 || m&bit(typ) != 0
}

// Publish queues ev for its system; it fills ID and Time when empty.
func (d *Dispatcher) Publish(ev Event) {
	if d == nil {
		return
	}
	q := d.queueFor(ev.SystemID)
	if q == nil {
		return // closed
	}
	if m := q.mask.Load(); m&maskKnown != 0 && m&bit(ev.Type) == 0 {
		return
	}
	if ev.ID == "" {
		ev.ID = d.idPrefix + "-" + strconv.FormatUint(d.seq.Add(1), 36)
	}
	if ev.Time == 0 {
		ev.Time = time.Now().UnixMilli()
	}
	q.mu.Lock()
	if len(q.events) >= d.cfg.QueueSize {
		n := len(q.events) - d.cfg.QueueSize + 1
		q.events = append(q.events[:0], q.events[n:]...)
		d.dropped.WithLabelValues(q.systemID, "queue_full").Add(float64(n))
	}
	if len(q.events) == 0 {
		q.first = time.Now()
	}
	q.events = append(q.events, ev)
	full := len(q.events) >= d.cfg.MaxBatch
	q.mu.Unlock()
	if full || len(q.wake) == 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// AllowUpstream takes a token from the upstream message bucket of a client
// (UpstreamRate per second, UpstreamBurst); false means the client is over
// the limit.
func (d *Dispatcher) AllowUpstream(clientID string) bool {
	if d.cfg.UpstreamRate <= 0 {
		return true
	}
	d.upMu.Lock()
	defer d.upMu.Unlock()
	l := d.upstream[clientID]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(d.cfg.UpstreamRate), max(d.cfg.UpstreamBurst, 1))
		d.upstream[clientID] = l
	}
	return l.Allow()
}

// Forget drops what the dispatcher keeps of a client that disconnected.
func (d *Dispatcher) Forget(clientID string) {
	d.upMu.Lock()
	delete(d.upstream, clientID)
	d.upMu.Unlock()
}

// Refresh makes the next delivery of systemID read its settings again
// (after they were changed on this node).
func (d *Dispatcher) Refresh(systemID string) {
	if q := d.lookup(systemID); q != nil {
		q.mu.Lock()
		q.loaded = time.Time{}
		q.mu.Unlock()
		q.mask.Store(0)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Close stops the senders; each posts what it holds until ctx ends, then
// drops the rest (counted as shutdown).
func (d *Dispatcher) Close(ctx context.Context) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			close(d.stop)
		case <-done:
		}
	}()
	// Senders see closed and flush what they hold; stop ends their waits.
	d.mu.Lock()
	for _, q := range d.systems {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
	d.wg.Wait()
	close(done)
}

func (d *Dispatcher) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// run is the sender of one system: one batch at a time, so events leave
// in the order they were published (per client, per system).
func (d *Dispatcher) run(q *queue) {
	defer d.wg.Done()
	refresh := time.NewTicker(d.cfg.SettingsTTL)
	defer refresh.Stop()
	for {
		closing := d.isClosed()
		set, ok := d.loadSettings(q)
		batch := d.take(q, set, ok, closing)
		if len(batch) > 0 {
			d.deliver(q, set, batch)
			continue
		}
		if closing {
			q.mu.Lock()
			n := len(q.events)
			q.events = nil
			q.mu.Unlock()
			if n > 0 {
				d.dropped.WithLabelValues(q.systemID, "shutdown").Add(float64(n))
			}
			return
		}
		q.mu.Lock()
		wait := time.Duration(-1)
		if len(q.events) > 0 && ok {
			wait = d.cfg.Linger - time.Since(q.first)
		}
		q.mu.Unlock()
		var linger <-chan time.Time
		var t *time.Timer
		if wait >= 0 {
			t = time.NewTimer(wait)
			linger = t.C
		}
		select {
		case <-q.wake:
		case <-linger:
		case <-refresh.C:
		case <-d.stop:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// loadSettings returns the system's settings, reading them from the store
// when older than SettingsTTL; ok is false while they were never read.
func (d *Dispatcher) loadSettings(q *queue) (store.Settings, bool) {
	q.mu.Lock()
	set, loaded := q.set, q.loaded
	q.mu.Unlock()
	if !loaded.IsZero() && time.Since(loaded) < d.cfg.SettingsTTL {
		return set, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	s, exists, err := d.settings(ctx, q.systemID)
	cancel()
	if err != nil {
		d.log.Debug("webhook settings not readable; keeping the last ones", zap.String("systemId", q.systemID), zap.Error(err))
		return set, !loaded.IsZero()
	}
	if !exists {
		s = store.Settings{}
	}
	q.mu.Lock()
	q.set, q.loaded = s, time.Now()
	q.mu.Unlock()
	q.mask.Store(maskOf(s))
	return s, true
}

// take removes the next batch from the queue: up to MaxBatch subscribed
// events once the oldest has waited Linger (at once when closing or full).
// Events the settings do not subscribe to are discarded.
func (d *Dispatcher) take(q *queue, set store.Settings, ok, closing bool) []Event {
	if !ok {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m := maskOf(set)
	kept := q.events[:0]
	for _, ev := range q.events {
		if m&bit(ev.Type) != 0 {
			kept = append(kept, ev)
		}
	}
	clear(q.events[len(kept):])
	q.events = kept
	if len(q.events) == 0 {
		return nil
	}
	if !closing && len(q.events) < d.cfg.MaxBatch && time.Since(q.first) < d.cfg.Linger {
		return nil
	}
	n := min(len(q.events), d.cfg.MaxBatch)
	batch := slices.Clone(q.events[:n])
	q.events = append(q.events[:0], q.events[n:]...)
	q.first = time.Now()
	return batch
}

// deliver posts batch until a 2xx, retrying with exponential backoff and
// jitter for RetryFor; then the batch is dropped and counted.
func (d *Dispatcher) deliver(q *queue, set store.Settings, batch []Event) {
	body, err := json.Marshal(Payload{Events: batch})
	if err != nil {
		d.log.Error("encode webhook events", zap.Error(err))
		return
	}
	start := time.Now()
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := d.post(set, body)
		if err == nil {
			d.posted.WithLabelValues(q.systemID).Add(float64(len(batch)))
			lat := d.latency.WithLabelValues(q.systemID)
			now := time.Now().UnixMilli()
			for _, ev := range batch {
				lat.Observe(float64(now-ev.Time) / 1000)
			}
			return
		}
		if d.isClosed() {
			// Shutting down: one try each, so a dead receiver does not
			// hold the node's exit until the drain deadline.
			d.dropped.WithLabelValues(q.systemID, "shutdown").Add(float64(len(batch)))
			return
		}
		if time.Since(start) >= d.cfg.RetryFor {
			d.log.Warn("webhook events dropped after retrying", zap.String("systemId", q.systemID),
				zap.Int("events", len(batch)), zap.Duration("retriedFor", time.Since(start)), zap.Error(err))
			d.dropped.WithLabelValues(q.systemID, "expired").Add(float64(len(batch)))
			return
		}
		d.retried.WithLabelValues(q.systemID).Inc()
		if attempt == 0 {
			d.log.Info("webhook POST failed; retrying", zap.String("systemId", q.systemID), zap.Error(err))
		}
		// Full jitter over the upper half: many nodes retrying one
		// receiver do not arrive together.
		wait := backoff/2 + mrand.N(backoff/2+1)
		wait = min(wait, d.cfg.RetryFor-time.Since(start))
		backoff = min(2*backoff, d.cfg.MaxBackoff)
		t := time.NewTimer(max(wait, 0))
		select {
		case <-t.C:
		case <-d.stop:
			t.Stop()
			d.dropped.WithLabelValues(q.systemID, "shutdown").Add(float64(len(batch)))
			return
		}
		// Settings may have changed while waiting (a new URL or secret).
		if s, ok := d.loadSettings(q); ok {
			if s.WebhookURL == "" {
				return // the webhook was removed: nothing to deliver to
			}
			set = s
		}
	}
}

var errStatus = errors.New("webhook answered")

// post sends one signed POST.
func (d *Dispatcher) post(set store.Settings, body []byte) error {
	if err := CheckURL(set.WebhookURL, d.cfg.AllowHosts); err != nil {
		return fmt.Errorf("webhook URL %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, set.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "go-websocket-webhook")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(set.WebhookSecret, ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	}
	return nil
}
