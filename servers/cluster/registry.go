package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// registerLoop keeps this node registered: it puts its key under a lease,
// keeps the lease alive, and when the lease is lost (etcd down or
// partitioned longer than the TTL, or the lease revoked behind its back) it
// registers again with backoff, reusing the old lease when etcd still has
// it so that peers see no departure at all.
func (c *Cluster) registerLoop() {
	defer close(c.regDone)
	val, err := json.Marshal(c.info)
	if err != nil {
		c.log.Error("encode registration", zap.Error(err))
		return
	}
	key := NodeKey(c.prefix, c.self)
	var lease clientv3.LeaseID
	var wait time.Duration
	everRegistered := false
	failures := 0
	for {
		if !backoff(c.regCtx, wait) {
			return
		}
		id, err := c.acquire(key, string(val), lease)
		if err != nil {
			if c.regCtx.Err() != nil {
				return
			}
			failures++
			if failures == 1 {
				c.log.Warn("registering in etcd failed; retrying with backoff", zap.Error(err))
			} else {
				c.log.Debug("registering in etcd failed", zap.Error(err), zap.Int("attempts", failures))
			}
			wait = nextBackoff(wait)
			continue
		}
		ka, err := c.cli.KeepAlive(c.regCtx, id)
		if err != nil {
			if c.regCtx.Err() != nil {
				return
			}
			c.log.Warn("lease keep-alive failed to start", zap.Error(err))
			wait = nextBackoff(wait)
			continue
		}
		lease = id
		c.lease.Store(int64(id))
		c.registered.Store(true)
		c.metrics.EtcdSession.Set(1)
		if everRegistered {
			c.log.Warn("registered in etcd again after losing the lease",
				zap.String("key", key), zap.Int64("lease", int64(id)), zap.Int("failedAttempts", failures))
		} else {
			c.log.Info("registered in etcd", zap.String("key", key), zap.Int64("lease", int64(id)))
			close(c.firstReg)
			everRegistered = true
		}
		failures, wait = 0, 0
		for range ka { // responses until the lease is lost or regCtx ends
		}
		c.registered.Store(false)
		c.metrics.EtcdSession.Set(0)
		if c.regCtx.Err() != nil {
			return
		}
		c.log.Warn("etcd lease lost (etcd unreachable for longer than the lease TTL, or the lease was revoked); registering again",
			zap.Int64("lease", int64(id)), zap.Int("leaseTTL", c.o.LeaseTTL))
	}
}

// acquire puts the registration under prev when etcd still holds that
// lease, else under a new one.
func (c *Cluster) acquire(key, val string, prev clientv3.LeaseID) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(c.regCtx, c.o.EtcdTimeout)
	defer cancel()
	id := clientv3.NoLease
	if prev != clientv3.NoLease {
		_, err := c.cli.KeepAliveOnce(ctx, prev)
		switch {
		case err == nil:
			id = prev
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, err
		}
	}
	if id == clientv3.NoLease {
		g, err := c.cli.Grant(ctx, int64(c.o.LeaseTTL))
		if err != nil {
			return 0, err
		}
		id = g.ID
	}
	if _, err := c.cli.Put(ctx, key, val, clientv3.WithLease(id)); err != nil {
		return 0, err
	}
	return id, nil
}
