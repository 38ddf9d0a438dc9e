package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdtest"
	"github.com/go-websocket/go-websocket/tools/ident"
)

const testPrefix = "/gows-test"

type member struct {
	c     *Cluster
	local *fakeLocal
	logs  *observer.ObservedLogs
	m     *metrics.Metrics
}

func startMember(t *testing.T, srv *etcdtest.Server, ttl int) *member {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	m := metrics.New()
	c, err := New(Options{Client: srv.Client(t), KeyPrefix: testPrefix, LeaseTTL: ttl, Secret: []byte("secret"),
		RPCListen: "127.0.0.1:0", RPCTimeout: 500 * time.Millisecond, RegisterWait: 5 * time.Second,
		Version: "test", Metrics: m, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	local := newFakeLocal()
	if err := c.Start(local, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		local.unstall()
		c.Close()
	})
	return &member{c: c, local: local, logs: logs, m: m}
}

// waitFor waits on the peer table's change notifications until cond holds.
func waitFor(t *testing.T, c *Cluster, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		ch := c.Changed()
		if cond() {
			return time.Since(start)
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("not within %v: %s (peers %+v)", within, what, c.Peers())
		case <-time.After(50 * time.Millisecond): // Ready and peer state change without a notification
		}
	}
}

func hasPeer(c *Cluster, id ident.NodeID) bool {
	for _, p := range c.Peers() {
		if p.ID == id.String() {
			return true
		}
	}
	return false
}

func TestRegistryAndPeerTable(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, 2)
	b := startMember(t, srv, 2)
	// Ready once registered and the first peer list is loaded (the
	// table's first load runs after Start returns).
	waitFor(t, a.c, 5*time.Second, "a ready", func() bool { return a.c.Ready() == nil })
	waitFor(t, a.c, 5*time.Second, "a sees b", func() bool { return hasPeer(a.c, b.local.id) })
	waitFor(t, b.c, 5*time.Second, "b sees a", func() bool { return hasPeer(b.c, a.local.id) })

	// The registration is the documented JSON under the documented key.
	resp, err := srv.Client(t).Get(context.Background(), NodeKey(testPrefix, a.local.id))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("registration key: %v %v", resp, err)
	}
	var info NodeInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &info); err != nil {
		t.Fatal(err)
	}
	if info.ID != a.local.id.String() || info.RPCAddr != a.c.RPCAddr() || info.HTTPAddr != "127.0.0.1:1" ||
		info.Version != "test" || info.StartedAt.IsZero() || resp.Kvs[0].Lease == 0 {
		t.Fatalf("registration %+v (lease %d)", info, resp.Kvs[0].Lease)
	}
	if got := metricValue(t, a.m, "gows_cluster_peers"); got != 1 {
		t.Fatalf("peers gauge %v", got)
	}
	if got := metricValue(t, a.m, "gows_etcd_session_up"); got != 1 {
		t.Fatalf("etcd session gauge %v", got)
	}

	// Leave: the lease is revoked, b forgets a at once, a is not ready.
	start := time.Now()
	a.c.Leave(context.Background())
	d := waitFor(t, b.c, 2*time.Second, "b forgets a after Leave", func() bool { return !hasPeer(b.c, a.local.id) })
	t.Logf("peer dropped %v after Leave (%v after it returned)", time.Since(start), d)
	if a.c.Ready() == nil {
		t.Fatal("a still ready after Leave")
	}
}

func TestRegistersAgainAfterLeaseLoss(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, 2)
	b := startMember(t, srv, 2)
	waitFor(t, b.c, 5*time.Second, "b sees a", func() bool { return hasPeer(b.c, a.local.id) })
	old := clientv3.LeaseID(a.c.reg.lease.Load())
	// Someone revokes a's lease behind its back (as etcd does after a
	// partition longer than the TTL): a must register again by itself.
	if _, err := srv.Client(t).Revoke(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b.c, 5*time.Second, "a registered again with a new lease", func() bool {
		l := clientv3.LeaseID(a.c.reg.lease.Load())
		return l != 0 && l != old && a.c.Ready() == nil && hasPeer(b.c, a.local.id)
	})
	if a.logs.FilterMessageSnippet("lease lost").Len() == 0 || a.logs.FilterMessageSnippet("registered in etcd again").Len() == 0 {
		t.Fatalf("lease loss and re-registration not logged: %v", a.logs.All())
	}
}

func TestEtcdOutageKeepsPeersAndReRegisters(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, 2)
	b := startMember(t, srv, 2)
	waitFor(t, a.c, 5*time.Second, "a sees b", func() bool { return hasPeer(a.c, b.local.id) })
	srv.Stop()
	// Longer than the TTL: both lose their lease, but keep their peers.
	waitFor(t, a.c, 10*time.Second, "a notices it lost its lease", func() bool { return a.c.Ready() != nil })
	if !hasPeer(a.c, b.local.id) || !a.c.table.get(b.local.id).up() {
		t.Fatal("a dropped b while etcd was down")
	}
	srv.Restart()
	for _, m := range []*member{a, b} {
		waitFor(t, m.c, 15*time.Second, "registered again after etcd came back", func() bool { return m.c.Ready() == nil })
	}
	cli := srv.Client(t)
	for _, m := range []*member{a, b} {
		waitFor(t, m.c, 10*time.Second, "key back in etcd", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			r, err := cli.Get(ctx, NodeKey(testPrefix, m.local.id))
			return err == nil && len(r.Kvs) == 1
		})
	}
	if !hasPeer(a.c, b.local.id) || !hasPeer(b.c, a.local.id) {
		t.Fatal("peer tables did not converge")
	}
}

// TestPeerWatchAfterCompaction starts the watch at a compacted revision:
// the table must be listed again instead of missing changes.
func TestPeerWatchAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	var ids []ident.NodeID
	var rev int64
	for i := range 3 {
		id := ident.NewNodeID()
		ids = append(ids, id)
		v, _ := json.Marshal(NodeInfo{ID: id.String(), RPCAddr: fmt.Sprintf("127.0.0.1:%d", 1+i)})
		r, err := cli.Put(ctx, NodeKey(testPrefix, id), string(v))
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	if _, err := cli.Delete(ctx, NodeKey(testPrefix, ids[2])); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Client: cli, KeyPrefix: testPrefix, LeaseTTL: 2, Secret: []byte("s"),
		RPCTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Start the watch by hand at a compacted revision (no registration).
	local := newFakeLocal()
	c.local, c.self = local, local.ID()
	c.d = &dialer{ctx: c.ctx, self: c.self, key: authKey([]byte("s")), timeout: c.o.RPCTimeout,
		log: c.log, metrics: c.metrics, failed: local.CountRPCError}
	c.table = newTable(c.d, cli, c.prefix, c.o.EtcdTimeout, c.o.LeaseTTL, c.log, c.cache, local.PeerLost)
	c.writer = newPresenceWriter(cli, c.prefix, c.self, local, c.o.EtcdTimeout, c.log, c.announce)
	c.startLoops(1)
	t.Cleanup(c.Close)
	waitFor(t, c, 5*time.Second, "table listed again after compaction", func() bool {
		return len(c.Peers()) == 2 && hasPeer(c, ids[0]) && hasPeer(c, ids[1])
	})
	if _, err := cli.Delete(ctx, NodeKey(testPrefix, ids[0])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 5*time.Second, "a deleted node leaves the table", func() bool { return !hasPeer(c, ids[0]) })
	// Garbage under the prefix is ignored.
	if _, err := cli.Put(ctx, testPrefix+"/nodes/not-a-node-id", "{}"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, NodeKey(testPrefix, ident.NewNodeID()), "not json"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(c.Peers()); n != 1 {
		t.Fatalf("table has %d peers after garbage, want 1", n)
	}
}

func metricValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			mt := mf.GetMetric()[0]
			if g := mt.GetGauge(); g != nil {
				return g.GetValue()
			}
			return mt.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
