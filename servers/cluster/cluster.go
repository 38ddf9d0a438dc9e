// Package cluster is the only code that knows other nodes exist. It is
// made of one type per job:
//
//   - registry (registry.go): this node's registration under a lease it
//     keeps alive, and takes again by itself when it is lost;
//   - table (table.go): the other nodes and their presence, from a prefix
//     Get plus one Watch (etcdwatch), and who leaves the routing when;
//   - peer and dialer (peer.go): one persistent, authenticated connection
//     per peer, every call bounded by a deadline;
//   - rpcServer (server.go, auth.go): this node's operations served to its
//     peers over net/rpc behind a handshake that proves the cluster secret;
//   - presenceWriter and presenceCache (presence.go): the presence index.
//
// Cluster ties them together and implements servers.Remote,
// servers.Targeted and servers.Presence; Open (open.go) builds the whole
// cluster mode of a process from its configuration.
//
// etcd layout (prefix = [cluster] keyPrefix):
//
//	<prefix>/nodes/<nodeId>               JSON NodeInfo, under the node's lease
//	<prefix>/presence/<nodeId>/<clientId> JSON rpcwire.ClientPresence, same lease
//	<prefix>/gone/<nodeId>                tombstone of a node declared gone
//	<prefix>/systems/<id>                 registered systems (servers/store.Etcd)
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
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
	// TLS, when set, runs the RPC port over mutual TLS.
	TLS *RPCTLS
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
	prefix  string

	local Local
	self  ident.NodeID
	info  NodeInfo

	ctx    context.Context // cancelled by Close: watch, writer, peers
	cancel context.CancelFunc
	wg     sync.WaitGroup // watch loop and writer

	d      *dialer
	table  *table
	reg    *registry
	writer *presenceWriter
	cache  *presenceCache
	srv    *rpcServer

	closeOnce sync.Once
	started   bool
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
	c := &Cluster{
		o: o, cli: o.Client, log: o.Logger, metrics: o.Metrics,
		prefix: strings.TrimRight(o.KeyPrefix, "/"),
		ctx:    ctx, cancel: cancel, cache: newPresenceCache(),
	}
	return c, nil
}

// NodeKey is the etcd key of a node's registration.
func NodeKey(prefix string, id ident.NodeID) string {
	return strings.TrimRight(prefix, "/") + "/nodes/" + id.String()
}

// Start binds the RPC port, starts serving local's operations to peers,
// starts the peer table, the presence writer and the registration, and
// waits (at most RegisterWait) for the first registration. The caller then
// attaches the cluster to the node with SetRemote.
func (c *Cluster) Start(local Local, httpAddr string) error {
	if c.started {
		return errors.New("cluster: already started")
	}
	c.started = true
	c.local, c.self = local, local.ID()
	ln, err := net.Listen("tcp", c.o.RPCListen)
	if err != nil {
		return fmt.Errorf("listen for RPC on %s (config key server.rpcPort): %w", c.o.RPCListen, err)
	}
	adv := c.o.RPCAdvertise
	if adv == "" {
		adv = advertised(ln.Addr())
	}
	c.info = NodeInfo{ID: c.self.String(), RPCAddr: adv, HTTPAddr: httpAddr, StartedAt: time.Now().UTC(), Version: c.o.Version}
	c.log = c.log.With(zap.String("node", c.info.ID))
	c.d = &dialer{ctx: c.ctx, self: c.self, key: authKey(c.o.Secret), timeout: c.o.RPCTimeout,
		log: c.log, metrics: c.metrics, failed: local.CountRPCError}
	if c.o.TLS != nil {
		c.d.tls = c.o.TLS.clientConfig()
		ln = tls.NewListener(ln, c.o.TLS.serverConfig())
	}
	c.table = newTable(c.d, c.cli, c.prefix, c.o.EtcdTimeout, c.o.LeaseTTL, c.log, c.cache, local.PeerLost)
	c.writer = newPresenceWriter(c.cli, c.prefix, c.self, local, c.o.EtcdTimeout, c.log, c.announce)
	c.registerMetrics()
	c.reg = newRegistry(c.ctx, c.cli, c.prefix, c.info, c.o.LeaseTTL, c.o.EtcdTimeout, c.log, c.metrics, c.writer, local.NodeLost)
	if c.srv, err = newRPCServer(ln, local, c.onPresenceOp, c.d.key, c.log.Named("rpc")); err != nil {
		ln.Close()
		return err
	}
	c.startLoops(0)
	go c.reg.run()
	if c.o.RegisterWait > 0 {
		t := time.NewTimer(c.o.RegisterWait)
		defer t.Stop()
		select {
		case <-c.reg.first:
		case <-t.C:
			c.log.Warn("not registered in etcd yet; still trying (readyz answers 503 until then)",
				zap.Duration("waited", c.o.RegisterWait))
		}
	}
	c.log.Info("cluster started", zap.String("rpcListen", ln.Addr().String()), zap.String("rpcAdvertise", adv),
		zap.Int("leaseTTL", c.o.LeaseTTL), zap.String("keyPrefix", c.prefix))
	return nil
}

// startLoops starts the watch (from rev+1; 0 reads everything first) and
// the presence writer.
func (c *Cluster) startLoops(rev int64) {
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.table.run(rev)
	}()
	go func() {
		defer c.wg.Done()
		c.writer.run(c.ctx)
	}()
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
	if c.reg == nil {
		return errors.New("cluster not started")
	}
	if err := c.reg.ready(); err != nil {
		return err
	}
	if !c.table.ready() {
		return errors.New("the peer list is not loaded yet")
	}
	return nil
}

// Peers lists the other nodes in the peer table, sorted by id.
func (c *Cluster) Peers() []PeerStatus {
	if c.table == nil {
		return nil
	}
	return c.table.list()
}

// Changed returns a channel closed at the next change of the peer table
// (a node joined or left). Take it before checking Peers to not miss one.
func (c *Cluster) Changed() <-chan struct{} { return c.table.changedCh() }

// Leave marks the registration as leaving and revokes the lease, so every
// peer forgets this node at once, and stops registering again. Call it
// before draining the clients.
func (c *Cluster) Leave(ctx context.Context) {
	if c.reg != nil {
		c.reg.leave(ctx, true)
	}
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
		if c.reg != nil {
			c.reg.leave(ctx, revoke)
		}
		if c.srv != nil {
			c.srv.close()
		}
		c.cancel()
		c.wg.Wait()
		if c.table != nil {
			c.table.stop()
		}
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
