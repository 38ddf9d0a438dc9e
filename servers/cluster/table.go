package cluster

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/tools/ident"
)

// watchPeers keeps the peer table: a prefix Get, then a Watch from the
// revision after it (from rev+1 directly when rev is not 0). A compaction,
// a lost leader or any watch failure ends the watch and the loop Gets
// again. While etcd is unreachable the table is kept as it is: the peers
// still serve, and delivery must go on.
func (c *Cluster) watchPeers(rev int64) {
	defer c.wg.Done()
	prefix := c.nodesPrefix()
	var wait time.Duration
	for {
		if !backoff(c.ctx, wait) {
			return
		}
		if rev == 0 {
			ctx, cancel := context.WithTimeout(c.ctx, c.o.EtcdTimeout)
			resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix())
			cancel()
			if err != nil {
				if c.ctx.Err() != nil {
					return
				}
				c.log.Debug("listing peers failed; keeping the current table", zap.Error(err))
				wait = nextBackoff(wait)
				continue
			}
			next := map[ident.NodeID]*peer{}
			old := *c.peers.Load()
			for _, kv := range resp.Kvs {
				if id, info, ok := c.parse(kv.Key, kv.Value); ok {
					next[id] = c.keepOrNew(old, id, info)
				}
			}
			c.swap(next)
			rev = resp.Header.Revision
		}
		wait = 0
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(c.ctx))
		wch := c.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				c.log.Info("peer watch ended; listing again", zap.Error(err))
				break
			}
			next := maps.Clone(*c.peers.Load())
			for _, ev := range wr.Events {
				switch ev.Type {
				case mvccpb.PUT:
					if id, info, ok := c.parse(ev.Kv.Key, ev.Kv.Value); ok {
						next[id] = c.keepOrNew(next, id, info)
					}
				case mvccpb.DELETE:
					if id, ok := c.parseKey(ev.Kv.Key); ok {
						delete(next, id)
					}
				}
			}
			c.swap(next)
		}
		wcancel()
		for range wch { // drain until the watcher closes the channel
		}
		if c.ctx.Err() != nil {
			return
		}
		rev, wait = 0, backoffMin
	}
}

func (c *Cluster) parseKey(key []byte) (ident.NodeID, bool) {
	s, ok := strings.CutPrefix(string(key), c.nodesPrefix())
	if !ok {
		return ident.NodeID{}, false
	}
	id, err := ident.ParseNodeID(s)
	if err != nil || id == c.self {
		return ident.NodeID{}, false
	}
	return id, true
}

func (c *Cluster) parse(key, val []byte) (ident.NodeID, NodeInfo, bool) {
	var info NodeInfo
	id, ok := c.parseKey(key)
	if !ok {
		return id, info, false
	}
	if err := json.Unmarshal(val, &info); err != nil || info.RPCAddr == "" {
		c.log.Warn("ignoring a malformed node registration", zap.ByteString("key", key), zap.Error(err))
		return id, info, false
	}
	return id, info, true
}

// keepOrNew keeps the running peer when its registration did not change
// (a node that registered again after losing its lease), else makes one.
func (c *Cluster) keepOrNew(old map[ident.NodeID]*peer, id ident.NodeID, info NodeInfo) *peer {
	if p, ok := old[id]; ok && p.info == info {
		return p
	}
	return newPeer(c, id, info)
}

// swap publishes next, starts its new peers and stops the ones that left.
// Only the watch loop calls it.
func (c *Cluster) swap(next map[ident.NodeID]*peer) {
	old := *c.peers.Load()
	changed := len(old) != len(next)
	for id, p := range next {
		if old[id] != p {
			changed = true
			c.peerWG.Add(1)
			go func() {
				defer c.peerWG.Done()
				p.run()
			}()
			c.log.Info("peer joined", zap.String("peer", p.name), zap.String("rpcAddr", p.info.RPCAddr),
				zap.String("httpAddr", p.info.HTTPAddr))
		}
	}
	if !changed {
		return
	}
	c.peers.Store(&next)
	for id, p := range old {
		if next[id] != p {
			p.stop()
			if _, still := next[id]; !still {
				c.log.Info("peer left", zap.String("peer", p.name))
			}
		}
	}
	c.metrics.Peers.Set(float64(len(next)))
	c.notify()
}

// peer returns the table entry of a node, nil when it is not registered.
func (c *Cluster) peer(id ident.NodeID) *peer { return (*c.peers.Load())[id] }

func sortPeers(ps []PeerStatus) {
	slices.SortFunc(ps, func(a, b PeerStatus) int { return strings.Compare(a.ID, b.ID) })
}
