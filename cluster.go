package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/pkg/setting"
	"github.com/go-websocket/go-websocket/servers"
	"github.com/go-websocket/go-websocket/servers/cluster"
	"github.com/go-websocket/go-websocket/servers/store"
)

// clusterParts is what cluster mode adds to a node. main calls, in order:
// setupCluster, NewNode with Systems, Attach(node), then at shutdown
// Leave (before the drain) and Close (after it).
type clusterParts struct {
	// Systems replaces the standalone file store.
	Systems store.Systems
	// Attach registers the node in etcd, starts the RPC server and the peer
	// table, and sets the node's Remote.
	Attach func(node *servers.Node) error
	// Ready reports whether the node is registered in etcd (for /readyz).
	Ready func() error
	// Leave revokes the node's lease so peers forget it at once.
	Leave func(ctx context.Context)
	// Close stops the RPC server, the watchers and the etcd client.
	Close func()
}

// setupCluster connects to etcd, loads the registered systems and prepares
// cluster mode. It fails when etcd does not answer within the dial timeout.
func setupCluster(cfg *setting.Config, log *zap.Logger, m *metrics.Metrics) (*clusterParts, error) {
	cc := cfg.Cluster
	if len(cc.Secret) < 16 {
		log.Warn("!!! cluster.secret is short: it authenticates clientIds and RPC peers; use at least 32 random characters (e.g. openssl rand -hex 32)")
	}
	cli, err := cluster.NewEtcdClient(cc, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cc.EtcdDialTimeout)
	defer cancel()
	systems, err := store.OpenEtcd(ctx, cli, cc.KeyPrefix, cc.RPCTimeout, log.Named("systems"))
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("config key cluster.etcdEndpoints: etcd at %s did not answer within %s (cluster.etcdDialTimeout): %w",
			strings.Join(cc.EtcdEndpoints, ","), cc.EtcdDialTimeout, err)
	}
	c, err := cluster.New(cluster.Options{
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
	var (
		mu       sync.Mutex
		attached *servers.Node
	)
	return &clusterParts{
		Systems: systems,
		Attach: func(node *servers.Node) error {
			if err := c.Start(node, node.LocalStats().HTTPAddr); err != nil {
				return err
			}
			node.SetRemote(c)
			mu.Lock()
			attached = node
			mu.Unlock()
			return nil
		},
		Ready: c.Ready,
		Leave: c.Leave,
		Close: func() {
			mu.Lock()
			if attached != nil {
				attached.SetRemote(nil)
			}
			mu.Unlock()
			c.Close()
			systems.Close()
			_ = cli.Close()
		},
	}, nil
}
