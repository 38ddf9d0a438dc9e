package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// registerMaxBackoff caps the wait between registration attempts, so a
// node registers again within a second of etcd's return.
const registerMaxBackoff = 200 * time.Millisecond

// registry keeps this node registered under a lease: it puts its key,
// keeps the lease alive, and when the lease is lost (etcd down or
// partitioned longer than the TTL, the node hung, or the lease revoked
// behind its back) it registers again at once, reusing the old lease when
// etcd still has it so that peers see no departure at all. A node that
// finds a tombstone (its peers declared it gone and announced its clients
// as left) closes its clients with 1012 before it registers again.
type registry struct {
	cli         *clientv3.Client
	prefix      string
	self        ident.NodeID
	info        NodeInfo
	leaseTTL    int
	etcdTimeout time.Duration
	log         *zap.Logger
	metrics     *metrics.Metrics
	writer      *presenceWriter
	// nodeLost closes every client with 1012.
	nodeLost func()

	ctx        context.Context // its own, so leave can stop it first
	cancel     context.CancelFunc
	done       chan struct{}
	first      chan struct{} // closed at the first registration
	registered atomic.Bool
	lease      atomic.Int64
	leaving    atomic.Bool
	leaveOnce  sync.Once
}

func newRegistry(parent context.Context, cli *clientv3.Client, prefix string, info NodeInfo, leaseTTL int,
	etcdTimeout time.Duration, log *zap.Logger, m *metrics.Metrics, w *presenceWriter, nodeLost func()) *registry {
	ctx, cancel := context.WithCancel(parent)
	self, _ := ident.ParseNodeID(info.ID)
	return &registry{cli: cli, prefix: prefix, self: self, info: info, leaseTTL: leaseTTL, etcdTimeout: etcdTimeout,
		log: log, metrics: m, writer: w, nodeLost: nodeLost,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), first: make(chan struct{})}
}

// run registers until leave or the parent context ends.
func (r *registry) run() {
	defer close(r.done)
	key := NodeKey(r.prefix, r.self)
	var lease clientv3.LeaseID
	var wait time.Duration
	everRegistered := false
	failures := 0
	for {
		if !etcdwatch.Sleep(r.ctx, wait) {
			return
		}
		id, err := r.acquire(key, lease, everRegistered)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 {
				r.log.Warn("registering in etcd failed; retrying", zap.Error(err))
			} else {
				r.log.Debug("registering in etcd failed", zap.Error(err), zap.Int("attempts", failures))
			}
			wait = etcdwatch.Next(wait, registerMaxBackoff)
			continue
		}
		ka, err := r.cli.KeepAlive(r.ctx, id)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.log.Warn("lease keep-alive failed to start", zap.Error(err))
			wait = etcdwatch.Next(wait, registerMaxBackoff)
			continue
		}
		lease = id
		r.lease.Store(int64(id))
		r.registered.Store(true)
		r.metrics.EtcdSession.Set(1)
		if everRegistered {
			r.log.Warn("registered in etcd again after losing the lease",
				zap.String("key", key), zap.Int64("lease", int64(id)), zap.Int("failedAttempts", failures))
		} else {
			r.log.Info("registered in etcd", zap.String("key", key), zap.Int64("lease", int64(id)))
			close(r.first)
			everRegistered = true
		}
		failures, wait = 0, 0
		for range ka { // responses until the lease is lost or ctx ends
		}
		r.registered.Store(false)
		r.writer.setLease(0)
		r.metrics.EtcdSession.Set(0)
		if r.ctx.Err() != nil {
			return
		}
		r.log.Warn("etcd lease lost (etcd unreachable for longer than the lease TTL, the node hung, or the lease revoked); registering again",
			zap.Int64("lease", int64(id)), zap.Int("leaseTTL", r.leaseTTL))
	}
}

// acquire keeps prev when etcd still holds that lease, else takes a new
// one, writes the node's presence under it and then its registration.
func (r *registry) acquire(key string, prev clientv3.LeaseID, before bool) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.etcdTimeout)
	defer cancel()
	if prev != clientv3.NoLease {
		_, err := r.cli.KeepAliveOnce(ctx, prev)
		switch {
		case err == nil:
			if _, err := r.cli.Put(ctx, key, r.value(false), clientv3.WithLease(prev)); err != nil {
				return 0, err
			}
			r.writer.setLease(prev)
			return prev, nil
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, err
		}
	}
	if before {
		if err := r.checkTombstone(ctx); err != nil {
			return 0, err
		}
	}
	g, err := r.cli.Grant(ctx, int64(r.leaseTTL))
	if err != nil {
		return 0, err
	}
	// The presence first, then the registration: a peer that sees the
	// registration finds the presence complete.
	rctx, rcancel := context.WithTimeout(r.ctx, 4*r.etcdTimeout)
	err = r.writer.replay(rctx, g.ID)
	rcancel()
	if err != nil {
		return 0, err
	}
	if _, err := r.cli.Put(ctx, key, r.value(false), clientv3.WithLease(g.ID)); err != nil {
		return 0, err
	}
	r.writer.setLease(g.ID)
	return g.ID, nil
}

// checkTombstone closes every client with 1012 when the peers declared
// this node gone while it was away, then removes the tombstone.
func (r *registry) checkTombstone(ctx context.Context) error {
	key := tombstoneKey(r.prefix, r.self)
	resp, err := r.cli.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	r.log.Warn("the cluster declared this node gone while it was hung or cut off",
		zap.ByteString("declaredBy", resp.Kvs[0].Value))
	r.nodeLost()
	_, err = r.cli.Delete(ctx, key)
	return err
}

func (r *registry) value(leaving bool) string {
	info := r.info
	info.Leaving = leaving
	b, _ := json.Marshal(info)
	return string(b)
}

// ready explains why the node is not registered; nil when it is.
func (r *registry) ready() error {
	switch {
	case r.leaving.Load():
		return errors.New("leaving the cluster")
	case !r.registered.Load():
		return errors.New("not registered in etcd (etcd unreachable or lease being renewed)")
	}
	return nil
}

// leave stops registering and, with revoke, marks the registration as
// leaving and revokes the lease so every peer forgets this node at once.
func (r *registry) leave(ctx context.Context, revoke bool) {
	r.leaveOnce.Do(func() {
		r.leaving.Store(true)
		r.cancel()
		<-r.done
		r.registered.Store(false)
		r.metrics.EtcdSession.Set(0)
		id := clientv3.LeaseID(r.lease.Swap(0))
		if !revoke || id == 0 {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, r.etcdTimeout)
		defer cancel()
		// Mark the registration as leaving first, so the peers drop this
		// node at the revoke without announcing its clients: it closes them
		// itself (1001), and their leave events go out from here.
		_, _ = r.cli.Put(rctx, NodeKey(r.prefix, r.self), r.value(true), clientv3.WithLease(id))
		if _, err := r.cli.Revoke(rctx, id); err != nil {
			r.log.Warn("revoking the lease failed; peers forget this node when it expires",
				zap.Error(err), zap.Int("leaseTTL", r.leaseTTL))
			return
		}
		r.log.Info("left the cluster (lease revoked)")
	})
}
