package main

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/pkg/metrics"
	"github.com/go-websocket/go-websocket/pkg/setting"
	"github.com/go-websocket/go-websocket/servers"
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

// setupCluster connects to etcd and prepares cluster mode.
func setupCluster(_ *setting.Config, _ *zap.Logger, _ *metrics.Metrics) (*clusterParts, error) {
	return nil, errors.New("config key cluster.enabled: cluster mode is not available in this build")
}
