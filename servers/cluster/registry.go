package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
)

// registerMaxBackoff caps the wait between registration attempts, so a
// node registers again within a second of etcd's return.
const registerMaxBackoff = 200 * time.Millisecond

// registerLoop keeps this node registered: it puts its key under a lease,
// keeps the lease alive, and when the lease is lost (etcd down or
// partitioned longer than the TTL, the node hung, or the lease revoked
// behind its back) it registers again at once, reusing the old lease when
// etcd still has it so that peers see no departure at all. A node that
// finds a tombstone (its peers declared it gone and announced its clients
// as left) closes its clients with 1012 before it registers again.
func (c *Cluster) registerLoop() {
	defer close(c.regDone)
	key := NodeKey(c.prefix, c.self)
	var lease clientv3.LeaseID
	var wait time.Duration
	everRegistered := false
	failures := 0
	for {
		if !etcdwatch.Sleep(c.regCtx, wait) {
			return
		}
		id, err := c.acquire(key, lease, everRegistered)
		if err != nil {
			if c.regCtx.Err() != nil {
				return
			}
			failures++
			if failures == 1 {
				c.log.Warn("registering in etcd failed; retrying", zap.Error(err))
			} else {
				c.log.Debug("registering in etcd failed", zap.Error(err), zap.Int("attempts", failures))
			}
			wait = etcdwatch.Next(wait, registerMaxBackoff)
			continue
		}
		ka, err := c.cli.KeepAlive(c.regCtx, id)
		if err != nil {
			if c.regCtx.Err() != nil {
				return
			}
			c.log.Warn("lease keep-alive failed to start", zap.Error(err))
			wait = etcdwatch.Next(wait, registerMaxBackoff)
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
		c.writer.setLease(0)
		c.metrics.EtcdSession.Set(0)
		if c.regCtx.Err() != nil {
			return
		}
		c.log.Warn("etcd lease lost (etcd unreachable for longer than the lease TTL, the node hung, or the lease revoked); registering again",
			zap.Int64("lease", int64(id)), zap.Int("leaseTTL", c.o.LeaseTTL))
	}
}

// acquire keeps prev when etcd still holds that lease, else takes a new
// one, writes the node's presence under it and then its registration.
func (c *Cluster) acquire(key string, prev clientv3.LeaseID, before bool) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(c.regCtx, c.o.EtcdTimeout)
	defer cancel()
	if prev != clientv3.NoLease {
		_, err := c.cli.KeepAliveOnce(ctx, prev)
		switch {
		case err == nil:
			if _, err := c.cli.Put(ctx, key, c.infoValue(false), clientv3.WithLease(prev)); err != nil {
				return 0, err
			}
			c.writer.setLease(prev)
			return prev, nil
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, err
		}
	}
	if before {
		if err := c.checkTombstone(ctx); err != nil {
			return 0, err
		}
	}
	g, err := c.cli.Grant(ctx, int64(c.o.LeaseTTL))
	if err != nil {
		return 0, err
	}
	// The presence first, then the registration: a peer that sees the
	// registration finds the presence complete.
	rctx, rcancel := context.WithTimeout(c.regCtx, 4*c.o.EtcdTimeout)
	err = c.writer.replay(rctx, g.ID)
	rcancel()
	if err != nil {
		return 0, err
	}
	if _, err := c.cli.Put(ctx, key, c.infoValue(false), clientv3.WithLease(g.ID)); err != nil {
		return 0, err
	}
	c.writer.setLease(g.ID)
	return g.ID, nil
}

// checkTombstone closes every client with 1012 when the peers declared
// this node gone while it was away, then removes the tombstone.
func (c *Cluster) checkTombstone(ctx context.Context) error {
	key := c.tombstoneKey(c.self)
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	c.log.Warn("the cluster declared this node gone while it was hung or cut off",
		zap.ByteString("declaredBy", resp.Kvs[0].Value))
	c.local.NodeLost()
	_, err = c.cli.Delete(ctx, key)
	return err
}

func (c *Cluster) infoValue(leaving bool) string {
	info := c.info
	info.Leaving = leaving
	b, _ := json.Marshal(info)
	return string(b)
}
