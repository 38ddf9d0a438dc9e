// Package limiter rate-limits API calls per key (a systemId) with token
// buckets from golang.org/x/time/rate.
package limiter

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// PerKey holds one token bucket per key. Keys are expected to be bounded
// (registered systems): callers check the key before asking.
type PerKey struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	byKey map[string]*rate.Limiter
}

// New allows perSecond requests per key with the burst (at least 1; a burst
// below perSecond is raised to it, rounded up).
func New(perSecond float64, burst int) *PerKey {
	if b := int(perSecond + 0.999); burst < b {
		burst = b
	}
	if burst < 1 {
		burst = 1
	}
	return &PerKey{limit: rate.Limit(perSecond), burst: burst, byKey: map[string]*rate.Limiter{}}
}

// Allow takes one token for key; when none is left it reports how long until
// one is.
func (p *PerKey) Allow(key string) (bool, time.Duration) {
	p.mu.Lock()
	l := p.byKey[key]
	if l == nil {
		l = rate.NewLimiter(p.limit, p.burst)
		p.byKey[key] = l
	}
	p.mu.Unlock()
	now := time.Now()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
