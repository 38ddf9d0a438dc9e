// Package etcdwatch keeps an in-memory view of an etcd key range current:
// a full read, then a watch from the revision after it, and a full read
// again whenever the watch ends (compaction, lost leader, canceled stream).
// The systems store and the cluster's peer table and presence cache all
// follow etcd this way. It also holds the one retry backoff they share.
package etcdwatch

import (
	"context"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Retry backoff bounds.
const (
	BackoffMin = 50 * time.Millisecond
	BackoffMax = time.Second
)

// Next doubles d within [BackoffMin, limit] (limit 0 means BackoffMax).
func Next(d, limit time.Duration) time.Duration {
	if limit <= 0 {
		limit = BackoffMax
	}
	return min(max(2*d, BackoffMin), limit)
}

// jitter spreads d by ±20% so nodes do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// Sleep waits about d (jittered; no wait when d is 0) and reports false
// when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(jitter(d))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Follower follows one key prefix.
type Follower struct {
	Client *clientv3.Client
	Prefix string
	// Timeout bounds each full read.
	Timeout time.Duration
	Log     *zap.Logger
	// Load reads the whole state (bounded by ctx) and returns the revision
	// it read at. The view is kept unchanged when it fails.
	Load func(ctx context.Context) (rev int64, err error)
	// Apply applies one watch response (events in revision order).
	Apply func(wr clientv3.WatchResponse)
	// Lost, when set, is called when the watch ends and the view is about
	// to be read again.
	Lost func()
}

// Run follows until ctx ends. rev is the revision of a Load already done
// by the caller (0: Run loads first).
func (f *Follower) Run(ctx context.Context, rev int64) {
	log := f.Log
	if log == nil {
		log = zap.NewNop()
	}
	var wait time.Duration
	for {
		if !Sleep(ctx, wait) {
			return
		}
		if rev == 0 {
			lctx, cancel := context.WithTimeout(ctx, f.Timeout)
			r, err := f.Load(lctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Debug("reading from etcd failed; keeping the current view", zap.String("prefix", f.Prefix), zap.Error(err))
				wait = Next(wait, 250*time.Millisecond)
				continue
			}
			rev = r
		}
		wait = 0
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := f.Client.Watch(wctx, f.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				log.Info("etcd watch ended; reading again", zap.String("prefix", f.Prefix), zap.Error(err))
				break
			}
			f.Apply(wr)
		}
		wcancel()
		for range wch { // drain until the watcher closes the channel
		}
		if ctx.Err() != nil {
			return
		}
		if f.Lost != nil {
			f.Lost()
		}
		rev, wait = 0, BackoffMin
	}
}
