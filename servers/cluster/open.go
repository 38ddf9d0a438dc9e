package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/pkg/setting"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/store"
)

// Mode is a process's cluster mode: the etcd client, the registered
// systems and this node's membership. The process calls, in order: Open,
// servers.NewNode with Systems, Attach, and at shutdown Leave (before the
// drain) and Close (after it).
type Mode struct {
	// Systems replaces the standalone file store.
	Systems *store.Etcd

	cli *clientv3.Client
	c   *Cluster

	mu       sync.Mutex
	attached *servers.Node
}

// Open connects to etcd, loads the registered systems and prepares the
// membership; nothing registers until Attach. It fails when etcd does not
// answer within cluster.etcdDialTimeout (ctx may end it sooner).
func Open(ctx context.Context, cfg *setting.Config, version string, m *metrics.Metrics, log *zap.Logger) (*Mode, error) {
	cc := cfg.Cluster
	if len(cc.Secret) < 16 {
		log.Warn("!!! cluster.secret is short: it authenticates clientIds and RPC peers; use at least 32 random characters (e.g. openssl rand -hex 32)")
	}
	cli, err := NewEtcdClient(cc, log)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, cc.EtcdDialTimeout)
	defer cancel()
	systems, err := store.OpenEtcd(lctx, cli, cc.KeyPrefix, cc.RPCTimeout, log.Named("systems"))
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("config key cluster.etcdEndpoints: etcd at %s did not answer within %s (cluster.etcdDialTimeout): %w",
			strings.Join(cc.EtcdEndpoints, ","), cc.EtcdDialTimeout, err)
	}
	var rpcTLS *RPCTLS
	if cc.TLSCert != "" {
		if rpcTLS, err = LoadRPCTLS(cc.TLSCert, cc.TLSKey, cc.TLSCA); err != nil {
			systems.Close()
			_ = cli.Close()
			return nil, err
		}
	}
	c, err := New(Options{
		TLS:          rpcTLS,
		Client:       cli,
		KeyPrefix:    cc.KeyPrefix,
		LeaseTTL:     cc.LeaseTTL,
		Secret:       []byte(cc.Secret),
		RPCListen:    net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.RPCPort)),
		RPCAdvertise: cc.RPCAdvertise,
		RPCTimeout:   cc.RPCTimeout,
		RegisterWait: cc.EtcdDialTimeout,
		Version:      version,
		Metrics:      m,
		Logger:       log.Named("cluster"),
	})
	if err != nil {
		systems.Close()
		_ = cli.Close()
		return nil, err
	}
	return &Mode{Systems: systems, cli: cli, c: c}, nil
}

// Attach registers the node in etcd, starts the RPC server, the peer table
// and the presence index, and makes the cluster the node's Remote.
func (md *Mode) Attach(node *servers.Node) error {
	if err := md.c.Start(node, node.LocalStats().HTTPAddr); err != nil {
		return err
	}
	node.SetRemote(md.c)
	md.mu.Lock()
	md.attached = node
	md.mu.Unlock()
	return nil
}

// Ready reports whether the node is registered and knows its peers (for
// /readyz).
func (md *Mode) Ready() error { return md.c.Ready() }

// Leave revokes the node's lease so peers forget it at once.
func (md *Mode) Leave(ctx context.Context) { md.c.Leave(ctx) }

// Close detaches the cluster from the node and stops the RPC server, the
// watches and the etcd client.
func (md *Mode) Close() {
	md.mu.Lock()
	if md.attached != nil {
		md.attached.SetRemote(nil)
	}
	md.mu.Unlock()
	md.c.Close()
	md.Systems.Close()
	_ = md.cli.Close()
}
