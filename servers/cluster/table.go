package cluster

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// table is the peer table: one watch over the cluster's keys keeps the
// other nodes' registrations (<prefix>/nodes/) and their presence
// (<prefix>/presence/, into the cache). While etcd is unreachable the table
// and the cache are kept as they are: the peers still serve, and delivery
// must go on.
//
// A node leaves the routing only when its registration is gone AND it does
// not answer over RPC. A registration that vanishes (its lease expired, or
// a resync no longer lists it) marks the peer unregistered; a verifier then
// probes it. A peer that answers stays (its lease expired only because etcd
// was away) with its last known presence, and is sent every group message
// until it registers again. A peer that does not answer is declared gone:
// a tombstone is written (so that it closes its clients should it come
// back), it leaves the table, and its clients are announced to this node's
// members with 1002.
type table struct {
	d           *dialer
	cli         *clientv3.Client
	prefix      string
	etcdTimeout time.Duration
	leaseTTL    int
	log         *zap.Logger
	cache       *presenceCache
	// lost is told of the clients of a node declared gone.
	lost func([]servers.LostClient)

	wg        sync.WaitGroup // peer goroutines and verifiers
	mu        sync.Mutex     // serialises changes of peers
	peers     atomic.Pointer[map[ident.NodeID]*peer]
	firstList chan struct{} // closed once the first list is loaded
	firstOnce sync.Once

	notifyMu sync.Mutex
	changed  chan struct{}
	// leaveTimers forget nodes that left gracefully (guarded by mu).
	leaveTimers []*time.Timer
}

func newTable(d *dialer, cli *clientv3.Client, prefix string, etcdTimeout time.Duration, leaseTTL int,
	log *zap.Logger, cache *presenceCache, lost func([]servers.LostClient)) *table {
	t := &table{d: d, cli: cli, prefix: prefix, etcdTimeout: etcdTimeout, leaseTTL: leaseTTL, log: log,
		cache: cache, lost: lost, firstList: make(chan struct{}), changed: make(chan struct{})}
	empty := map[ident.NodeID]*peer{}
	t.peers.Store(&empty)
	return t
}

func (t *table) nodesPrefix() string    { return t.prefix + "/nodes/" }
func (t *table) presencePrefix() string { return t.prefix + "/presence/" }

// run follows the nodes and presence keys until the dialer's context ends,
// from rev+1 (0: reads everything first).
func (t *table) run(rev int64) {
	f := etcdwatch.Follower{
		Client: t.cli, Prefix: t.prefix + "/", Timeout: t.etcdTimeout, Log: t.log,
		Load:  t.loadAll,
		Apply: t.apply,
	}
	f.Run(t.d.ctx, rev)
}

// ready reports whether the first list is loaded.
func (t *table) ready() bool {
	select {
	case <-t.firstList:
		return true
	default:
		return false
	}
}

// loadAll reads every registration and every presence key at one revision.
func (t *table) loadAll(ctx context.Context) (int64, error) {
	resp, err := t.cli.Get(ctx, t.nodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	rev := resp.Header.Revision
	presp, err := t.cli.Get(ctx, t.presencePrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	old := *t.peers.Load()
	next := make(map[ident.NodeID]*peer, len(resp.Kvs))
	seen := map[ident.NodeID]bool{}
	for _, kv := range resp.Kvs {
		id, info, ok := t.parse(kv.Key, kv.Value)
		if !ok || info.Leaving {
			continue
		}
		p := t.keepOrNew(old, id, info)
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
	t.swap(next)
	t.replaceNodes(seen, presp.Kvs, rev)
	t.mu.Unlock()
	for _, p := range verify {
		t.unregister(p)
	}
	t.cache.setApplied(rev)
	t.firstOnce.Do(func() {
		t.cache.readyAt.Store(time.Now().UnixNano())
		close(t.firstList)
	})
	return rev, nil
}

// apply applies one watch response: registrations first, then presence.
func (t *table) apply(wr clientv3.WatchResponse) {
	nodes := t.nodesPrefix()
	var presence []*clientv3.Event
	load := map[ident.NodeID]int64{}
	var verify []*peer
	var left []ident.NodeID
	t.mu.Lock()
	next := maps.Clone(*t.peers.Load())
	for _, ev := range wr.Events {
		if !strings.HasPrefix(string(ev.Kv.Key), nodes) {
			presence = append(presence, ev)
			continue
		}
		switch ev.Type {
		case mvccpb.PUT:
			id, info, ok := t.parse(ev.Kv.Key, ev.Kv.Value)
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
			p := t.keepOrNew(next, id, info)
			if !had || old != p || old.unregistered.Load() || !t.cache.loaded(id) {
				load[id] = ev.Kv.ModRevision
			}
			p.unregistered.Store(false)
			next[id] = p
		case mvccpb.DELETE:
			id, ok := t.parseKey(ev.Kv.Key)
			if !ok {
				continue
			}
			p := next[id]
			if p == nil {
				continue
			}
			if p.leaving.Load() {
				// A graceful leave: the node announces its own clients
				// and gets no more broadcasts, but stays reachable while
				// it drains, for the sessions peers take over from it.
				left = append(left, id)
				continue
			}
			verify = append(verify, p)
		}
	}
	t.swap(next)
	t.mu.Unlock()
	for _, id := range left {
		t.cache.dropNode(id)
		p := next[id]
		tm := time.AfterFunc(leavingGrace, func() { t.forget(id, p) })
		t.mu.Lock()
		t.leaveTimers = append(t.leaveTimers, tm)
		t.mu.Unlock()
	}
	for id, rev := range load {
		ctx, cancel := context.WithTimeout(t.d.ctx, t.etcdTimeout)
		err := t.loadNode(ctx, id, rev)
		cancel()
		if err != nil {
			t.log.Warn("reading a peer's presence failed; it gets every group message until the next read", zap.Error(err))
			t.cache.setDirty(id)
		}
	}
	for _, p := range verify {
		t.unregister(p)
	}
	t.applyPresence(presence)
	t.cache.setApplied(wr.Header.Revision)
}

// unregister marks p as no longer registered and starts its verifier.
func (t *table) unregister(p *peer) {
	p.unregistered.Store(true)
	if !p.verifying.CompareAndSwap(false, true) {
		return
	}
	t.log.Info("peer registration gone; checking whether it still answers", zap.String("peer", p.name))
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer p.verifying.Store(false)
		every := max(time.Duration(t.leaseTTL)*time.Second/2, 250*time.Millisecond)
		for p.unregistered.Load() && t.d.ctx.Err() == nil {
			alive := t.probe(p)
			if !p.unregistered.Load() {
				return
			}
			if !alive {
				t.declareGone(p)
				return
			}
			if !etcdwatch.Sleep(t.d.ctx, every) {
				return
			}
		}
	}()
}

// probe reports whether p answers a call within the RPC deadline.
func (t *table) probe(p *peer) bool {
	ctx, cancel := context.WithTimeout(t.d.ctx, t.d.timeout)
	defer cancel()
	if p.cur.Load() != nil {
		var reply rpcwire.BroadcastReply
		_, err := p.call(ctx, rpcwire.RPCBroadcast, &rpcwire.BroadcastOp{Kind: rpcwire.OpStats}, &reply)
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
func (t *table) declareGone(p *peer) {
	// The tombstone first: a node that comes back and finds none registers
	// again without closing its clients, so none may be announced before.
	t.writeTombstone(p.id)
	t.mu.Lock()
	if (*t.peers.Load())[p.id] != p || !p.unregistered.Load() {
		t.mu.Unlock()
		return
	}
	next := maps.Clone(*t.peers.Load())
	delete(next, p.id)
	t.swap(next)
	t.mu.Unlock()
	lost := t.cache.dropNode(p.id)
	t.log.Warn("peer declared gone: its registration expired and it does not answer; announcing its clients as left",
		zap.String("peer", p.name), zap.Int("clients", len(lost)))
	out := make([]servers.LostClient, 0, len(lost))
	for _, e := range lost {
		out = append(out, servers.LostClient{ClientID: e.id, ClientPresence: e.presence()})
	}
	t.lost(out)
}

// tombstoneTTL is how long a declared-gone node's tombstone lasts (s).
const tombstoneTTL = 3600

func tombstoneKey(prefix string, id ident.NodeID) string { return prefix + "/gone/" + id.String() }

// writeTombstone records that id was declared gone, so that the node, if
// it comes back, closes its clients before serving them again.
func (t *table) writeTombstone(id ident.NodeID) {
	var wait time.Duration
	for range 5 {
		if !etcdwatch.Sleep(t.d.ctx, wait) {
			return
		}
		ctx, cancel := context.WithTimeout(t.d.ctx, t.etcdTimeout)
		g, err := t.cli.Grant(ctx, tombstoneTTL)
		if err == nil {
			_, err = t.cli.Put(ctx, tombstoneKey(t.prefix, id), t.d.self.String(), clientv3.WithLease(g.ID))
		}
		cancel()
		if err == nil {
			return
		}
		wait = etcdwatch.Next(wait, 0)
	}
}

func (t *table) parseKey(key []byte) (ident.NodeID, bool) {
	s, ok := strings.CutPrefix(string(key), t.nodesPrefix())
	if !ok {
		return ident.NodeID{}, false
	}
	id, err := ident.ParseNodeID(s)
	if err != nil || id == t.d.self {
		return ident.NodeID{}, false
	}
	return id, true
}

func (t *table) parse(key, val []byte) (ident.NodeID, NodeInfo, bool) {
	var info NodeInfo
	id, ok := t.parseKey(key)
	if !ok {
		return id, info, false
	}
	if err := json.Unmarshal(val, &info); err != nil || info.RPCAddr == "" {
		t.log.Warn("ignoring a malformed node registration", zap.ByteString("key", key), zap.Error(err))
		return id, info, false
	}
	return id, info, true
}

// keepOrNew keeps the running peer when its registration did not change
// (a node that registered again after losing its lease), else makes one.
func (t *table) keepOrNew(old map[ident.NodeID]*peer, id ident.NodeID, info NodeInfo) *peer {
	if p, ok := old[id]; ok && p.info.same(info) {
		return p
	}
	return newPeer(t.d, id, info)
}

// swap publishes next, starts its new peers and stops the ones that left.
// The caller holds mu.
func (t *table) swap(next map[ident.NodeID]*peer) {
	old := *t.peers.Load()
	changed := len(old) != len(next)
	for id, p := range next {
		if old[id] != p {
			changed = true
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				p.run()
			}()
			t.log.Info("peer joined", zap.String("peer", p.name), zap.String("rpcAddr", p.info.RPCAddr),
				zap.String("httpAddr", p.info.HTTPAddr))
		}
	}
	if !changed {
		return
	}
	t.peers.Store(&next)
	for id, p := range old {
		if next[id] != p {
			p.stop()
			if _, still := next[id]; !still {
				t.log.Info("peer left", zap.String("peer", p.name))
			}
		}
	}
	t.d.metrics.Peers.Set(float64(len(next)))
	t.notify()
}

// leavingGrace is how long a node that left gracefully stays reachable
// (for session take-overs only) while it drains.
const leavingGrace = 30 * time.Second

// forget drops a node that left gracefully, once its grace is over.
func (t *table) forget(id ident.NodeID, p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.peers.Load()
	if cur[id] != p || len(cur) == 0 {
		return
	}
	next := maps.Clone(cur)
	delete(next, id)
	t.swap(next)
}

// lookup reads a node missing from the table from etcd (a node that
// registered a moment ago, before its watch event arrived) and adds it.
func (t *table) lookup(ctx context.Context, id ident.NodeID) *peer {
	if id == t.d.self {
		return nil
	}
	// Detached from the caller's cancellation (an HTTP handler's context
	// may be reused once it returns); the timeout bounds the read.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(t.etcdTimeout, 500*time.Millisecond))
	defer cancel()
	resp, err := t.cli.Get(ctx, NodeKey(t.prefix, id))
	if err != nil || len(resp.Kvs) == 0 {
		return nil
	}
	_, info, ok := t.parse(resp.Kvs[0].Key, resp.Kvs[0].Value)
	if !ok || info.Leaving {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.get(id); p != nil {
		return p
	}
	next := maps.Clone(*t.peers.Load())
	p := newPeer(t.d, id, info)
	next[id] = p
	t.swap(next)
	return p
}

// get returns the table entry of a node, nil when it is not in the table.
func (t *table) get(id ident.NodeID) *peer { return (*t.peers.Load())[id] }

// all returns the current table (do not modify it).
func (t *table) all() map[ident.NodeID]*peer { return *t.peers.Load() }

// list is the table for tests and the dashboard, sorted by id.
func (t *table) list() []PeerStatus {
	all := t.all()
	out := make([]PeerStatus, 0, len(all))
	for _, p := range all {
		if p.leaving.Load() {
			continue // left; reachable only to hand its sessions over
		}
		out = append(out, PeerStatus{NodeInfo: p.info, Up: p.up()})
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// changedCh returns a channel closed at the next change of the table.
func (t *table) changedCh() <-chan struct{} {
	t.notifyMu.Lock()
	defer t.notifyMu.Unlock()
	return t.changed
}

func (t *table) notify() {
	t.notifyMu.Lock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.notifyMu.Unlock()
}

// stop stops every peer and waits for the peer goroutines; the caller has
// cancelled the dialer's context and stopped the watch.
func (t *table) stop() {
	t.mu.Lock()
	for _, tm := range t.leaveTimers {
		tm.Stop()
	}
	t.leaveTimers = nil
	t.mu.Unlock()
	for _, p := range t.all() {
		p.stop()
	}
	t.wg.Wait()
	empty := map[ident.NodeID]*peer{}
	t.peers.Store(&empty)
	t.d.metrics.Peers.Set(0)
}

// ------------------------------------------------------------------ presence

// applyPresence applies the presence events of one watch response. The
// entries of a node whose registration is gone but which still answers are
// kept (deletes ignored) until it is declared gone or registers again.
func (t *table) applyPresence(events []*clientv3.Event) {
	prefix := t.presencePrefix()
	pc := t.cache
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, ev := range events {
		node, id, ok := parsePresenceKey(prefix, ev.Kv.Key)
		if !ok || node == t.d.self || ev.Kv.ModRevision <= pc.loadedAt[node] {
			continue
		}
		if ev.Type == mvccpb.DELETE {
			if p := t.get(node); p == nil || !p.unregistered.Load() {
				pc.del(node, id)
			}
			continue
		}
		if e, ok := decodeEntry(node, id, ev.Kv.Value); ok {
			pc.put(e)
		}
	}
}

// loadNode replaces a node's entries with etcd's at rev.
func (t *table) loadNode(ctx context.Context, node ident.NodeID, rev int64) error {
	prefix := t.presencePrefix() + node.String() + "/"
	resp, err := t.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return err
	}
	t.replaceNodes(map[ident.NodeID]bool{node: true}, resp.Kvs, rev)
	return nil
}

// replaceNodes replaces the entries of nodes with kvs read at rev.
func (t *table) replaceNodes(nodes map[ident.NodeID]bool, kvs []*mvccpb.KeyValue, rev int64) {
	prefix := t.presencePrefix()
	pc := t.cache
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for node := range nodes {
		for id := range pc.byNode[node] {
			pc.del(node, id)
		}
		pc.loadedAt[node] = rev
	}
	for _, kv := range kvs {
		node, id, ok := parsePresenceKey(prefix, kv.Key)
		if !ok || !nodes[node] {
			continue
		}
		if e, ok := decodeEntry(node, id, kv.Value); ok {
			pc.put(e)
		}
	}
}
