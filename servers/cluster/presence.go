package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdwatch"
	"github.com/go-websocket/go-websocket/servers/rpcwire"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// The presence index: every node keeps, under its own lease, one key per
// local client,
//
//	<prefix>/presence/<nodeId>/<clientId>   JSON rpcwire.ClientPresence
//
// written by a batching writer (one transaction per short window), and
// every node follows all of them into a cache (the watch of the peer
// table). Group sends go only to the nodes the cache names; lists answer
// from it.

const (
	// presenceWindow is how long the writer gathers changes before one
	// transaction.
	presenceWindow = time.Millisecond
	// maxTxnOps is etcd's default limit of operations per transaction.
	maxTxnOps = 128
	// youngFor is how long after its first peer list a node sends group
	// messages to every node: a bind on a node it does not know yet could
	// otherwise be missed.
	youngFor = 2 * time.Second
)

func presenceKey(prefix string, node ident.NodeID, clientID string) string {
	return prefix + node.String() + "/" + clientID
}

// ------------------------------------------------------------------ writer

// presenceWriter writes this node's presence in batches.
type presenceWriter struct {
	cli         *clientv3.Client
	prefix      string // <prefix>/presence/
	self        ident.NodeID
	local       Local
	etcdTimeout time.Duration
	log         *zap.Logger
	// announce tells the peers about a write (Rev) or a failure (Dirty).
	announce func(ctx context.Context, op *rpcwire.PresenceOp)

	mu      sync.Mutex
	pending map[string]struct{}
	waiters []chan bool
	lease   clientv3.LeaseID // 0 while the node holds no lease
	dirty   bool             // a change could not be written
	kick    chan struct{}

	writes atomic.Uint64 // etcd write operations (put or delete)
	txns   atomic.Uint64
	bytes  atomic.Uint64
}

func newPresenceWriter(cli *clientv3.Client, prefix string, self ident.NodeID, local Local, etcdTimeout time.Duration,
	log *zap.Logger, announce func(context.Context, *rpcwire.PresenceOp)) *presenceWriter {
	return &presenceWriter{cli: cli, prefix: prefix + "/presence/", self: self, local: local, etcdTimeout: etcdTimeout,
		log: log, announce: announce, pending: map[string]struct{}{}, kick: make(chan struct{}, 1)}
}

func (w *presenceWriter) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// changed queues a client's presence; with wait it returns a channel that
// receives true once the write is visible to the reachable peers, false
// when that was given up (no lease, or the write failed).
func (w *presenceWriter) changed(id string, wait bool) <-chan bool {
	var ch chan bool
	w.mu.Lock()
	w.pending[id] = struct{}{}
	if wait {
		ch = make(chan bool, 1)
		if w.lease == 0 {
			ch <- false // etcd away: not written before etcd is back
		} else {
			w.waiters = append(w.waiters, ch)
		}
	}
	w.mu.Unlock()
	w.signal()
	return ch
}

// markDirty records that a change may be invisible to the peers; the next
// successful write tells them it is not any more.
func (w *presenceWriter) markDirty() {
	w.mu.Lock()
	w.dirty = true
	w.mu.Unlock()
}

// setLease is called by the registration: a new lease (after replay) or 0.
func (w *presenceWriter) setLease(id clientv3.LeaseID) {
	w.mu.Lock()
	w.lease = id
	w.mu.Unlock()
	w.signal()
}

// run flushes batches until ctx ends.
func (w *presenceWriter) run(ctx context.Context) {
	var wait time.Duration
	for {
		select {
		case <-ctx.Done():
			w.release(w.takeWaiters(), false)
			return
		case <-w.kick:
		}
		if !etcdwatch.Sleep(ctx, max(wait, presenceWindow)) {
			w.release(w.takeWaiters(), false)
			return
		}
		w.mu.Lock()
		lease := w.lease
		if lease == 0 || len(w.pending) == 0 {
			waiters := w.waiters
			w.waiters = nil
			w.mu.Unlock()
			w.release(waiters, lease != 0)
			continue
		}
		ids := make([]string, 0, len(w.pending))
		for id := range w.pending {
			ids = append(ids, id)
		}
		clear(w.pending)
		waiters := w.waiters
		w.waiters = nil
		wasDirty := w.dirty
		w.mu.Unlock()

		rev, err := w.write(ctx, lease, ids)
		if err != nil {
			w.mu.Lock()
			for _, id := range ids {
				w.pending[id] = struct{}{}
			}
			first := !w.dirty
			w.dirty = true
			w.mu.Unlock()
			if first {
				w.log.Warn("writing presence to etcd failed; peers send this node every group message until it is written", zap.Error(err))
			}
			w.announce(ctx, &rpcwire.PresenceOp{Dirty: true})
			w.release(waiters, false)
			wait = etcdwatch.Next(wait, 250*time.Millisecond)
			w.signal()
			continue
		}
		wait = 0
		w.mu.Lock()
		w.dirty = false
		w.mu.Unlock()
		if len(waiters) > 0 || wasDirty {
			w.announce(ctx, &rpcwire.PresenceOp{Rev: rev})
		}
		w.release(waiters, true)
	}
}

func (w *presenceWriter) takeWaiters() []chan bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.waiters
	w.waiters = nil
	return ws
}

func (w *presenceWriter) release(ws []chan bool, ok bool) {
	for _, ch := range ws {
		ch <- ok
	}
}

// write puts or deletes the keys of ids under lease, at most maxTxnOps
// per transaction, and returns the revision of the last one.
func (w *presenceWriter) write(ctx context.Context, lease clientv3.LeaseID, ids []string) (int64, error) {
	var rev int64
	for len(ids) > 0 {
		n := min(len(ids), maxTxnOps)
		ops := make([]clientv3.Op, 0, n)
		for _, id := range ids[:n] {
			key := presenceKey(w.prefix, w.self, id)
			p, ok := w.local.PresenceOf(id)
			if !ok {
				ops = append(ops, clientv3.OpDelete(key))
				w.bytes.Add(uint64(len(key)))
				continue
			}
			val, err := json.Marshal(p)
			if err != nil {
				continue
			}
			ops = append(ops, clientv3.OpPut(key, string(val), clientv3.WithLease(lease)))
			w.bytes.Add(uint64(len(key) + len(val)))
		}
		ids = ids[n:]
		tctx, cancel := context.WithTimeout(ctx, w.etcdTimeout)
		resp, err := w.cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return 0, err
		}
		w.writes.Add(uint64(len(ops)))
		w.txns.Add(1)
		rev = resp.Header.Revision
	}
	return rev, nil
}

// replay writes every local client under a new lease (the old keys went
// with the old lease); pending changes are covered by it.
func (w *presenceWriter) replay(ctx context.Context, lease clientv3.LeaseID) error {
	w.mu.Lock()
	clear(w.pending)
	w.mu.Unlock()
	var ids []string
	w.local.EachPresence(func(id string, _ rpcwire.ClientPresence) { ids = append(ids, id) })
	if len(ids) == 0 {
		return nil
	}
	_, err := w.write(ctx, lease, ids)
	return err
}

// ------------------------------------------------------------------ cache

// entry is one client of another node in the cache, kept compact (a
// million of them on every node): its groups as a slice, not a map.
type entry struct {
	node   ident.NodeID
	id     string
	system string
	user   string
	groups []membership
}

type membership struct {
	group string
	rpcwire.GroupMember
}

// presence is the entry as the node's types spell it.
func (e *entry) presence() rpcwire.ClientPresence {
	p := rpcwire.ClientPresence{SystemID: e.system, UserID: e.user}
	if len(e.groups) > 0 {
		p.Groups = make(map[string]rpcwire.GroupMember, len(e.groups))
		for _, m := range e.groups {
			p.Groups[m.group] = m.GroupMember
		}
	}
	return p
}

type groupKey struct{ system, group string }

// presenceCache is every other node's presence, by node, by system and by
// group, fed by the watch of the peer table.
type presenceCache struct {
	mu       sync.RWMutex
	byNode   map[ident.NodeID]map[string]*entry
	loadedAt map[ident.NodeID]int64 // events at or below are already in
	systems  map[string]map[string]*entry
	groups   map[groupKey]map[string]*entry
	holders  map[groupKey]map[ident.NodeID]int
	users    map[groupKey][]*entry // {system, userId}: users have few clients
	dirty    map[ident.NodeID]bool // nodes whose writes are failing

	applied atomic.Int64 // revision the cache reflects
	needRev atomic.Int64 // highest revision a peer asked this node to reach
	readyAt atomic.Int64 // unix nanos of the first complete load; 0 before
	changed chan struct{}
}

func newPresenceCache() *presenceCache {
	return &presenceCache{
		byNode: map[ident.NodeID]map[string]*entry{}, loadedAt: map[ident.NodeID]int64{},
		systems: map[string]map[string]*entry{}, groups: map[groupKey]map[string]*entry{},
		holders: map[groupKey]map[ident.NodeID]int{}, dirty: map[ident.NodeID]bool{},
		users:   map[groupKey][]*entry{},
		changed: make(chan struct{}),
	}
}

// put adds or replaces a client; the caller holds mu.
func (pc *presenceCache) put(e *entry) {
	pc.del(e.node, e.id)
	m := pc.byNode[e.node]
	if m == nil {
		m = map[string]*entry{}
		pc.byNode[e.node] = m
	}
	m[e.id] = e
	s := pc.systems[e.system]
	if s == nil {
		s = map[string]*entry{}
		pc.systems[e.system] = s
	}
	s[e.id] = e
	for _, m := range e.groups {
		index(pc.groups, pc.holders, groupKey{e.system, m.group}, e)
	}
	if e.user != "" {
		k := groupKey{e.system, e.user}
		pc.users[k] = append(pc.users[k], e)
	}
}

// index adds e under k in an index and its per-node counts.
func index(idx map[groupKey]map[string]*entry, at map[groupKey]map[ident.NodeID]int, k groupKey, e *entry) {
	m := idx[k]
	if m == nil {
		m = map[string]*entry{}
		idx[k] = m
	}
	m[e.id] = e
	h := at[k]
	if h == nil {
		h = map[ident.NodeID]int{}
		at[k] = h
	}
	h[e.node]++
}

// unindex removes e from under k.
func unindex(idx map[groupKey]map[string]*entry, at map[groupKey]map[ident.NodeID]int, k groupKey, e *entry) {
	if m := idx[k]; m != nil {
		delete(m, e.id)
		if len(m) == 0 {
			delete(idx, k)
		}
	}
	if h := at[k]; h != nil {
		if h[e.node]--; h[e.node] <= 0 {
			delete(h, e.node)
		}
		if len(h) == 0 {
			delete(at, k)
		}
	}
}

// del removes a client; the caller holds mu.
func (pc *presenceCache) del(node ident.NodeID, id string) *entry {
	e := pc.byNode[node][id]
	if e == nil {
		return nil
	}
	delete(pc.byNode[node], id)
	if s := pc.systems[e.system]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(pc.systems, e.system)
		}
	}
	for _, m := range e.groups {
		unindex(pc.groups, pc.holders, groupKey{e.system, m.group}, e)
	}
	if e.user != "" {
		k := groupKey{e.system, e.user}
		if l := slices.DeleteFunc(pc.users[k], func(x *entry) bool { return x == e }); len(l) > 0 {
			pc.users[k] = l
		} else {
			delete(pc.users, k)
		}
	}
	return e
}

// dropNode removes a node's clients and returns them.
func (pc *presenceCache) dropNode(node ident.NodeID) []*entry {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var out []*entry
	for id := range pc.byNode[node] {
		if e := pc.del(node, id); e != nil {
			out = append(out, e)
		}
	}
	delete(pc.byNode, node)
	delete(pc.loadedAt, node)
	delete(pc.dirty, node)
	return out
}

// loaded reports whether a node's entries were read from etcd.
func (pc *presenceCache) loaded(node ident.NodeID) bool {
	pc.mu.RLock()
	defer pc.mu.RUnlock()
	_, ok := pc.loadedAt[node]
	return ok
}

// setDirty makes group sends include node until its next write is known.
func (pc *presenceCache) setDirty(node ident.NodeID) {
	pc.mu.Lock()
	pc.dirty[node] = true
	pc.mu.Unlock()
}

// setApplied records that the cache reflects rev and wakes waiters.
func (pc *presenceCache) setApplied(rev int64) {
	if rev <= pc.applied.Load() {
		return
	}
	pc.applied.Store(rev)
	pc.mu.Lock()
	close(pc.changed)
	pc.changed = make(chan struct{})
	pc.mu.Unlock()
}

// waitApplied waits until the cache reflects rev, at most d.
func (pc *presenceCache) waitApplied(rev int64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		pc.mu.RLock()
		ch := pc.changed
		pc.mu.RUnlock()
		if pc.applied.Load() >= rev {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return pc.applied.Load() >= rev
		}
	}
}

func parsePresenceKey(prefix string, key []byte) (ident.NodeID, string, bool) {
	rest, ok := strings.CutPrefix(string(key), prefix)
	if !ok {
		return ident.NodeID{}, "", false
	}
	ns, id, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return ident.NodeID{}, "", false
	}
	node, err := ident.ParseNodeID(ns)
	return node, id, err == nil
}

func decodeEntry(node ident.NodeID, id string, val []byte) (*entry, bool) {
	var p rpcwire.ClientPresence
	if err := json.Unmarshal(val, &p); err != nil || p.SystemID == "" {
		return nil, false
	}
	e := &entry{node: node, id: id, system: p.SystemID, user: p.UserID}
	if len(p.Groups) > 0 {
		e.groups = make([]membership, 0, len(p.Groups))
		for g, m := range p.Groups {
			e.groups = append(e.groups, membership{group: g, GroupMember: m})
		}
	}
	return e, true
}

// ------------------------------------------------------------------ Presence

var _ servers.Presence = (*Cluster)(nil)

// PresenceChanged implements servers.Presence.
func (c *Cluster) PresenceChanged(clientID string) { c.writer.changed(clientID, false) }

// PresenceSync implements servers.Presence: it waits (at most within/2)
// until the client's presence is written and every reachable peer has
// applied it; otherwise it tells the peers (at most within/2) that this
// node's presence is not current, so that they send it every group and
// user message until a later write is.
func (c *Cluster) PresenceSync(clientID string, within time.Duration) {
	ch := c.writer.changed(clientID, true)
	t := time.NewTimer(within / 2)
	defer t.Stop()
	select {
	case ok := <-ch:
		if ok {
			return
		}
	case <-t.C:
	}
	c.writer.markDirty()
	ctx, cancel := context.WithTimeout(c.ctx, within/2)
	defer cancel()
	c.announce(ctx, &rpcwire.PresenceOp{Dirty: true})
}

// trusted reports whether group sends may follow the cache.
func (c *Cluster) trusted() bool {
	pc := c.cache
	ready := pc.readyAt.Load()
	return ready != 0 && time.Since(time.Unix(0, ready)) >= youngFor && pc.applied.Load() >= pc.needRev.Load()
}

// Holders implements servers.Presence: the nodes holding members of the
// group, plus every node whose presence is not known exactly (its writes
// failing, or its lease gone while it still answers).
func (c *Cluster) Holders(systemID, group string) ([]ident.NodeID, bool) {
	return c.holders(func(pc *presenceCache, add func(ident.NodeID)) {
		for node := range pc.holders[groupKey{systemID, group}] {
			add(node)
		}
	})
}

// UserHolders implements servers.Presence: the nodes holding clients of
// the user, as Holders.
func (c *Cluster) UserHolders(systemID, userID string) ([]ident.NodeID, bool) {
	return c.holders(func(pc *presenceCache, add func(ident.NodeID)) {
		for _, e := range pc.users[groupKey{systemID, userID}] {
			add(e.node)
		}
	})
}

// holders collects the nodes each calls add for (under the cache's read
// lock), plus the nodes whose presence is not known exactly.
func (c *Cluster) holders(each func(pc *presenceCache, add func(ident.NodeID))) ([]ident.NodeID, bool) {
	if !c.trusted() {
		return nil, true
	}
	pc := c.cache
	var out []ident.NodeID
	add := func(node ident.NodeID) {
		if !slices.Contains(out, node) {
			out = append(out, node)
		}
	}
	pc.mu.RLock()
	each(pc, add)
	for node := range pc.dirty {
		add(node)
	}
	pc.mu.RUnlock()
	for _, p := range c.table.all() {
		if p.unregistered.Load() && !slices.Contains(out, p.id) {
			out = append(out, p.id)
		}
	}
	return out, false
}

// Clients implements servers.Presence.
func (c *Cluster) Clients(systemID, group string) []string {
	pc := c.cache
	pc.mu.RLock()
	defer pc.mu.RUnlock()
	var m map[string]*entry
	if group == "" {
		m = pc.systems[systemID]
	} else {
		m = pc.groups[groupKey{systemID, group}]
	}
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}

// UserClients implements servers.Presence.
func (c *Cluster) UserClients(systemID, userID string) []string {
	pc := c.cache
	pc.mu.RLock()
	defer pc.mu.RUnlock()
	l := pc.users[groupKey{systemID, userID}]
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, e.id)
	}
	return out
}

// PresenceStats is what the writer has cost so far, for measurements.
type PresenceStats struct {
	Writes, Txns, Bytes uint64
}

// PresenceStats returns the writer's counters.
func (c *Cluster) PresenceStats() PresenceStats {
	return PresenceStats{Writes: c.writer.writes.Load(), Txns: c.writer.txns.Load(), Bytes: c.writer.bytes.Load()}
}

// announce tells every reachable peer about this node's presence writes:
// Dirty (a write failed: send me every group message) or Rev (my writes up
// to Rev are in etcd: reach that revision before answering).
func (c *Cluster) announce(ctx context.Context, op *rpcwire.PresenceOp) {
	op.Node = c.self.String()
	var wg sync.WaitGroup
	for _, p := range c.table.all() {
		if !p.up() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reply rpcwire.PresenceReply
			_ = c.d.call(ctx, p, methodPresence, rpcwire.RPCPresence, op, &reply)
		}()
	}
	wg.Wait()
}

// onPresenceOp runs a peer's announcement on this node.
func (c *Cluster) onPresenceOp(op *rpcwire.PresenceOp) *rpcwire.PresenceReply {
	node, err := ident.ParseNodeID(op.Node)
	if err != nil {
		return &rpcwire.PresenceReply{}
	}
	pc := c.cache
	if op.Dirty {
		pc.mu.Lock()
		pc.dirty[node] = true
		pc.mu.Unlock()
		return &rpcwire.PresenceReply{Applied: true}
	}
	pc.mu.Lock()
	delete(pc.dirty, node)
	pc.mu.Unlock()
	for {
		cur := pc.needRev.Load()
		if op.Rev <= cur || pc.needRev.CompareAndSwap(cur, op.Rev) {
			break
		}
	}
	return &rpcwire.PresenceReply{Applied: pc.waitApplied(op.Rev, c.o.RPCTimeout/2)}
}
