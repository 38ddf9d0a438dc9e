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

	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// The peer table: one watch over the cluster's keys keeps the other nodes'
// registrations (<prefix>/nodes/) and their presence (<prefix>/presence/).
// While etcd is unreachable the table and the cache are kept as they are:
// the peers still serve, and delivery must go on.
//
// A node leaves the routing only when its registration is gone AND it does
// not answer over RPC. A registration that vanishes (its lease expired, or
// a resync no longer lists it) marks the peer unregistered; a verifier then
// probes it. A peer that answers stays (its lease expired only because etcd
// was away) with its last known presence, and is sent every group message
// until it registers again. A peer that does not answer is declared gone:
// it leaves the table, its clients are announced to this node's members with
// 1002, and a tombstone tells it, should it come back, to close its clients.

// watchCluster follows the nodes and presence keys until Close, from rev+1
// (0: reads everything first).
func (c *Cluster) watchCluster(rev int64) {
	defer c.wg.Done()
	f := etcdwatch.Follower{
		Client: c.cli, Prefix: c.prefix + "/", Timeout: c.o.EtcdTimeout, Log: c.log,
		Load:  c.loadAll,
		Apply: c.apply,
	}
	f.Run(c.ctx, rev)
}

// loadAll reads every registration and every presence key at one revision.
func (c *Cluster) loadAll(ctx context.Context) (int64, error) {
	resp, err := c.cli.Get(ctx, c.nodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	presp, err := c.cli.Get(ctx, c.presencePrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, err
	}
	c.tableMu.Lock()
	old := *c.peers.Load()
	next := make(map[ident.NodeID]*peer, len(resp.Kvs))
	seen := map[ident.NodeID]bool{}
	for _, kv := range resp.Kvs {
		id, info, ok := c.parse(kv.Key, kv.Value)
		if !ok || info.Leaving {
			continue
		}
		p := c.keepOrNew(old, id, info)
		p.unregistered.Store(false)
		next[id] = p
		seen[id] = true
	}
	var verify []*peer
	for id, p := range old {
		if !seen[id] {
			next[id] = p
			verify = append(verify, p)
		}
	}
	c.swap(next)
	c.replaceNodes(seen, presp.Kvs, rev)
	c.tableMu.Unlock()
	for _, p := range verify {
		c.unregister(p)
	}
	c.cache.setApplied(rev)
	c.firstListOnce.Do(func() {
		c.cache.readyAt.Store(time.Now().UnixNano())
		close(c.firstList)
	})
	return rev, nil
}

// apply applies one watch response: registrations first, then presence.
func (c *Cluster) apply(wr clientv3.WatchResponse) {
	nodes := c.nodesPrefix()
	var presence []*clientv3.Event
	load := map[ident.NodeID]int64{}
	var verify []*peer
	var left []ident.NodeID
	c.tableMu.Lock()
	next := maps.Clone(*c.peers.Load())
	for _, ev := range wr.Events {
		if !strings.HasPrefix(string(ev.Kv.Key), nodes) {
			presence = append(presence, ev)
			continue
		}
		switch ev.Type {
		case mvccpb.PUT:
			id, info, ok := c.parse(ev.Kv.Key, ev.Kv.Value)
			if !ok {
				continue
			}
			old, had := next[id]
			if info.Leaving {
				if had {
					old.leaving.Store(true)
				}
				continue
			}
			p := c.keepOrNew(next, id, info)
			if !had || old != p || old.unregistered.Load() || !c.cache.loaded(id) {
				load[id] = ev.Kv.ModRevision
			}
			p.unregistered.Store(false)
			next[id] = p
		case mvccpb.DELETE:
			id, ok := c.parseKey(ev.Kv.Key)
			if !ok {
				continue
			}
			p := next[id]
			if p == nil {
				continue
			}
			if p.leaving.Load() {
				// A graceful leave: the node announces its own clients.
				delete(next, id)
				left = append(left, id)
				continue
			}
			verify = append(verify, p)
		}
	}
	c.swap(next)
	c.tableMu.Unlock()
	for _, id := range left {
		c.cache.dropNode(id)
	}
	for id, rev := range load {
		ctx, cancel := context.WithTimeout(c.ctx, c.o.EtcdTimeout)
		err := c.loadNode(ctx, id, rev)
		cancel()
		if err != nil {
			c.log.Warn("reading a peer's presence failed; it gets every group message until the next read", zap.Error(err))
			c.cache.setDirty(id)
		}
	}
	for _, p := range verify {
		c.unregister(p)
	}
	c.applyPresence(presence, func(id ident.NodeID) bool {
		p := c.peer(id)
		return p != nil && p.unregistered.Load()
	})
	c.cache.setApplied(wr.Header.Revision)
}

// unregister marks p as no longer registered and starts its verifier.
func (c *Cluster) unregister(p *peer) {
	p.unregistered.Store(true)
	if !p.verifying.CompareAndSwap(false, true) {
		return
	}
	c.log.Info("peer registration gone; checking whether it still answers", zap.String("peer", p.name))
	c.peerWG.Add(1)
	go func() {
		defer c.peerWG.Done()
		defer p.verifying.Store(false)
		every := max(time.Duration(c.o.LeaseTTL)*time.Second/2, 250*time.Millisecond)
		for p.unregistered.Load() && c.ctx.Err() == nil {
			alive := c.probe(p)
			if !p.unregistered.Load() {
				return
			}
			if !alive {
				c.declareGone(p)
				return
			}
			if !etcdwatch.Sleep(c.ctx, every) {
				return
			}
		}
	}()
}

// probe reports whether p answers a call within the RPC deadline.
func (c *Cluster) probe(p *peer) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	defer cancel()
	if p.cur.Load() != nil {
		var reply servers.BroadcastReply
		_, err := p.call(ctx, servers.RPCBroadcast, &servers.BroadcastOp{Kind: servers.OpStats}, &reply)
		return err == nil
	}
	pc, err := p.connect()
	if err != nil {
		return false
	}
	pc.cli.Close()
	return true
}

// declareGone removes p from the routing, announces its clients to this
// node's members and leaves it a tombstone.
func (c *Cluster) declareGone(p *peer) {
	// The tombstone first: a node that comes back and finds none registers
	// again without closing its clients, so none may be announced before.
	c.writeTombstone(p.id)
	c.tableMu.Lock()
	if (*c.peers.Load())[p.id] != p || !p.unregistered.Load() {
		c.tableMu.Unlock()
		return
	}
	next := maps.Clone(*c.peers.Load())
	delete(next, p.id)
	c.swap(next)
	c.tableMu.Unlock()
	lost := c.cache.dropNode(p.id)
	c.log.Warn("peer declared gone: its registration expired and it does not answer; announcing its clients as left",
		zap.String("peer", p.name), zap.Int("clients", len(lost)))
	out := make([]servers.LostClient, 0, len(lost))
	for _, e := range lost {
		out = append(out, servers.LostClient{ClientID: e.id, ClientPresence: e.ClientPresence})
	}
	c.local.PeerLost(out)
}

// tombstoneTTL is how long a declared-gone node's tombstone lasts.
const tombstoneTTL = 3600

func (c *Cluster) tombstoneKey(id ident.NodeID) string { return c.prefix + "/gone/" + id.String() }

// writeTombstone records that id was declared gone, so that the node, if
// it comes back, closes its clients before serving them again.
func (c *Cluster) writeTombstone(id ident.NodeID) {
	var wait time.Duration
	for range 5 {
		if !etcdwatch.Sleep(c.ctx, wait) {
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.o.EtcdTimeout)
		g, err := c.cli.Grant(ctx, tombstoneTTL)
		if err == nil {
			_, err = c.cli.Put(ctx, c.tombstoneKey(id), c.self.String(), clientv3.WithLease(g.ID))
		}
		cancel()
		if err == nil {
			return
		}
		wait = etcdwatch.Next(wait, 0)
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
	if p, ok := old[id]; ok && p.info.same(info) {
		return p
	}
	return newPeer(c, id, info)
}

// swap publishes next, starts its new peers and stops the ones that left.
// The caller holds tableMu.
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

// lookupPeer reads a node missing from the table from etcd (a node that
// registered a moment ago, before its watch event arrived) and adds it.
func (c *Cluster) lookupPeer(ctx context.Context, id ident.NodeID) *peer {
	if id == c.self {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, min(c.o.EtcdTimeout, 500*time.Millisecond))
	defer cancel()
	resp, err := c.cli.Get(ctx, NodeKey(c.prefix, id))
	if err != nil || len(resp.Kvs) == 0 {
		return nil
	}
	_, info, ok := c.parse(resp.Kvs[0].Key, resp.Kvs[0].Value)
	if !ok || info.Leaving {
		return nil
	}
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	if p := c.peer(id); p != nil {
		return p
	}
	next := maps.Clone(*c.peers.Load())
	p := newPeer(c, id, info)
	next[id] = p
	c.swap(next)
	return p
}

// peer returns the table entry of a node, nil when it is not in the table.
func (c *Cluster) peer(id ident.NodeID) *peer { return (*c.peers.Load())[id] }

func sortPeers(ps []PeerStatus) {
	slices.SortFunc(ps, func(a, b PeerStatus) int { return strings.Compare(a.ID, b.ID) })
}
