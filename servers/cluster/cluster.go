// Package cluster is the only code that knows other nodes exist. It
// registers this node in etcd under a lease it keeps alive (and takes again
// by itself when it is lost), keeps a live table of the other nodes from a
// prefix Get plus a Watch, serves the node's operations to its peers over
// net/rpc behind a handshake that proves the cluster secret, and reaches
// the peers over one persistent, authenticated connection each, every call
// bounded by a deadline. *Cluster implements servers.Remote.
//
// etcd layout (prefix = [cluster] keyPrefix):
//
//	<prefix>/nodes/<nodeId>               JSON NodeInfo, under the node's lease
//	<prefix>/presence/<nodeId>/<clientId> JSON servers.ClientPresence, same lease
//	<prefix>/gone/<nodeId>                tombstone of a node declared gone
//	<prefix>/systems/<id>                 registered systems (servers/store.Etcd)
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// Options configures a Cluster.
type Options struct {
	// Client is the etcd client; the caller owns it and closes it after Close.
	Client *clientv3.Client
	// KeyPrefix prefixes every key (e.g. "/go-websocket").
	KeyPrefix string
	// LeaseTTL is the registration lease in seconds (etcd enforces a minimum
	// of about 2 s with its default timings).
	LeaseTTL int
	// Secret is the cluster secret; peers must hold the same one.
	Secret []byte
	// RPCListen is the host:port the RPC server binds ("127.0.0.1:0" in tests).
	RPCListen string
	// RPCAdvertise is the address peers dial; "" derives it from the bound
	// address (an unspecified host becomes 127.0.0.1).
	RPCAdvertise string
	// RPCTimeout bounds every call to a peer, including dial and handshake.
	RPCTimeout time.Duration
	// EtcdTimeout bounds each etcd request (default RPCTimeout).
	EtcdTimeout time.Duration
	// RegisterWait is how long Start waits for the first registration
	// before returning anyway (registration keeps retrying; /readyz tells).
	RegisterWait time.Duration
	Version      string
	Metrics      *metrics.Metrics
	Logger       *zap.Logger
}

// NodeInfo is a node's registration, the JSON value of its etcd key.
type NodeInfo struct {
	ID        string    `json:"id"`
	RPCAddr   string    `json:"rpcAddr"`
	HTTPAddr  string    `json:"httpAddr"`
	StartedAt time.Time `json:"startedAt"`
	Version   string    `json:"version"`
	// Leaving is set just before a graceful leave revokes the lease.
	Leaving bool `json:"leaving,omitempty"`
}

// same reports whether two registrations name the same running node.
func (a NodeInfo) same(b NodeInfo) bool {
	a.Leaving, b.Leaving = false, false
	return a == b
}

// PeerStatus is one entry of the peer table, for tests and the dashboard.
type PeerStatus struct {
	NodeInfo
	Up bool `json:"up"`
}

// Cluster is this node's membership in a cluster. Build it with New, start
// it with Start, and stop it with Close (after Leave for a graceful exit).
type Cluster struct {
	o       Options
	cli     *clientv3.Client
	log     *zap.Logger
	metrics *metrics.Metrics
	authKey []byte
	timeout time.Duration
	prefix  string

	local Local
	self  ident.NodeID
	info  NodeInfo

	ctx    context.Context // cancelled by Close: peer table, peers
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch loop
	peerWG sync.WaitGroup // peer goroutines
	srv    *rpcServer

	// Registration: its own context so Leave can stop it first.
	regCtx     context.Context
	regCancel  context.CancelFunc
	regDone    chan struct{}
	firstReg   chan struct{}
	registered atomic.Bool
	lease      atomic.Int64
	leaving    atomic.Bool
	leaveOnce  sync.Once
	closeOnce  sync.Once
	started    bool

	tableMu       sync.Mutex                             // serialises changes of peers
	peers         atomic.Pointer[map[ident.NodeID]*peer] // copy-on-write
	firstList     chan struct{}                          // closed once the first peer list is loaded
	firstListOnce sync.Once
	cache         *presenceCache
	writer        *presenceWriter
	notifyMu      sync.Mutex
	changed       chan struct{}
}

var _ servers.Remote = (*Cluster)(nil)

// New validates the options; nothing starts until Start.
func New(o Options) (*Cluster, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("cluster: no etcd client")
	case len(o.Secret) == 0:
		return nil, errors.New("config key cluster.secret: required in cluster mode")
	case o.LeaseTTL < 1:
		return nil, errors.New("config key cluster.leaseTTL: must be at least 1")
	case o.RPCTimeout <= 0:
		return nil, errors.New("config key cluster.rpcTimeout: must be positive")
	}
	if o.EtcdTimeout <= 0 {
		o.EtcdTimeout = o.RPCTimeout
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	ctx, cancel := context.WithCancel(context.Background())
	regCtx, regCancel := context.WithCancel(ctx)
	c := &Cluster{
		o: o, cli: o.Client, log: o.Logger, metrics: o.Metrics,
		authKey: authKey(o.Secret), timeout: o.RPCTimeout,
		prefix: strings.TrimRight(o.KeyPrefix, "/"),
		ctx:    ctx, cancel: cancel, regCtx: regCtx, regCancel: regCancel,
		regDone: make(chan struct{}), firstReg: make(chan struct{}), changed: make(chan struct{}),
		firstList: make(chan struct{}), cache: newPresenceCache(),
	}
	c.writer = newPresenceWriter(c)
	c.registerMetrics()
	empty := map[ident.NodeID]*peer{}
	c.peers.Store(&empty)
	return c, nil
}

func (c *Cluster) nodesPrefix() string { return c.prefix + "/nodes/" }

// NodeKey is the etcd key of a node's registration.
func NodeKey(prefix string, id ident.NodeID) string {
	return strings.TrimRight(prefix, "/") + "/nodes/" + id.String()
}

// Start binds the RPC port, starts serving local's operations to peers,
// starts the peer table and the registration, and waits (at most
// RegisterWait) for the first registration. The caller then attaches the
// cluster to the node with SetRemote.
func (c *Cluster) Start(local Local, httpAddr string) error {
	if c.started {
		return errors.New("cluster: already started")
	}
	c.started = true
	c.local, c.self = local, local.ID()
	ln, err := net.Listen("tcp", c.o.RPCListen)
	if err != nil {
		close(c.regDone)
		return fmt.Errorf("listen for RPC on %s (config key server.rpcPort): %w", c.o.RPCListen, err)
	}
	adv := c.o.RPCAdvertise
	if adv == "" {
		adv = advertised(ln.Addr())
	}
	c.info = NodeInfo{ID: c.self.String(), RPCAddr: adv, HTTPAddr: httpAddr, StartedAt: time.Now().UTC(), Version: c.o.Version}
	c.log = c.log.With(zap.String("node", c.info.ID))
	if c.srv, err = newRPCServer(ln, local, c.onPresenceOp, c.authKey, c.log.Named("rpc")); err != nil {
		ln.Close()
		close(c.regDone)
		return err
	}
	c.wg.Add(2)
	go c.watchCluster(0)
	go func() {
		defer c.wg.Done()
		c.writer.run(c.ctx)
	}()
	go c.registerLoop()
	if c.o.RegisterWait > 0 {
		t := time.NewTimer(c.o.RegisterWait)
		defer t.Stop()
		select {
		case <-c.firstReg:
		case <-t.C:
			c.log.Warn("not registered in etcd yet; still trying (readyz answers 503 until then)",
				zap.Duration("waited", c.o.RegisterWait))
		}
	}
	c.log.Info("cluster started", zap.String("rpcListen", ln.Addr().String()), zap.String("rpcAdvertise", adv),
		zap.Int("leaseTTL", c.o.LeaseTTL), zap.String("keyPrefix", c.prefix))
	return nil
}

func advertised(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && (t.IP == nil || t.IP.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(t.Port))
	}
	return a.String()
}

// RPCAddr is the address peers dial (valid after Start).
func (c *Cluster) RPCAddr() string { return c.info.RPCAddr }

// Ready reports whether the node is registered in etcd and knows its
// peers (for /readyz).
func (c *Cluster) Ready() error {
	switch {
	case c.leaving.Load():
		return errors.New("leaving the cluster")
	case !c.registered.Load():
		return errors.New("not registered in etcd (etcd unreachable or lease being renewed)")
	}
	select {
	case <-c.firstList:
	default:
		return errors.New("the peer list is not loaded yet")
	}
	return nil
}

// Peers lists the other nodes in the peer table, sorted by id.
func (c *Cluster) Peers() []PeerStatus {
	t := *c.peers.Load()
	out := make([]PeerStatus, 0, len(t))
	for _, p := range t {
		out = append(out, PeerStatus{NodeInfo: p.info, Up: p.up()})
	}
	sortPeers(out)
	return out
}

// Changed returns a channel closed at the next change of the peer table
// (a node joined or left). Take it before checking Peers to not miss one.
func (c *Cluster) Changed() <-chan struct{} {
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	return c.changed
}

func (c *Cluster) notify() {
	c.notifyMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.notifyMu.Unlock()
}

// Leave revokes the lease so every peer forgets this node at once, and
// stops registering again. Call it before draining the clients.
func (c *Cluster) Leave(ctx context.Context) { c.leave(ctx, true) }

func (c *Cluster) leave(ctx context.Context, revoke bool) {
	c.leaveOnce.Do(func() {
		c.leaving.Store(true)
		c.regCancel()
		<-c.regDone
		c.registered.Store(false)
		c.metrics.EtcdSession.Set(0)
		id := clientv3.LeaseID(c.lease.Swap(0))
		if !revoke || id == 0 {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, c.o.EtcdTimeout)
		defer cancel()
		// Mark the registration as leaving first, so the peers drop this
		// node at the revoke without announcing its clients: it closes them
		// itself (1001), and their leave events go out from here.
		_, _ = c.cli.Put(rctx, NodeKey(c.prefix, c.self), c.infoValue(true), clientv3.WithLease(id))
		if _, err := c.cli.Revoke(rctx, id); err != nil {
			c.log.Warn("revoking the lease failed; peers forget this node when it expires",
				zap.Error(err), zap.Int("leaseTTL", c.o.LeaseTTL))
			return
		}
		c.log.Info("left the cluster (lease revoked)")
	})
}

// Close leaves the cluster (if Leave was not called), stops the RPC server,
// the peer table and every peer connection. It does not close the etcd client.
func (c *Cluster) Close() {
	c.shutdown(true)
}

// Crash stops everything like Close but leaves the lease to expire, as a
// killed process would. Tests use it to simulate a node dying without warning.
func (c *Cluster) Crash() {
	c.shutdown(false)
}

func (c *Cluster) shutdown(revoke bool) {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.o.EtcdTimeout)
		defer cancel()
		if !c.started {
			close(c.regDone)
		}
		c.leave(ctx, revoke)
		if c.srv != nil {
			c.srv.close()
		}
		c.cancel()
		c.wg.Wait()
		for _, p := range *c.peers.Load() {
			p.stop()
		}
		c.peerWG.Wait()
		empty := map[ident.NodeID]*peer{}
		c.peers.Store(&empty)
		c.metrics.Peers.Set(0)
	})
}

// registerMetrics exports the presence writer's etcd cost.
func (c *Cluster) registerMetrics() {
	w := c.writer
	for _, col := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gows_presence_etcd_writes_total",
			Help: "Presence keys written or deleted in etcd by this node."}, func() float64 { return float64(w.writes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gows_presence_etcd_txns_total",
			Help: "etcd transactions of presence writes by this node."}, func() float64 { return float64(w.txns.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gows_presence_etcd_bytes_total",
			Help: "Bytes of presence keys and values written to etcd by this node."}, func() float64 { return float64(w.bytes.Load()) }),
	} {
		_ = c.metrics.Registry.Register(col) // a second cluster on one registry keeps the first's
	}
}
