package cluster

import (
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/go-websocket/go-websocket/pkg/setting"
)

// reconnect is how the etcd client redials a lost connection: gRPC's
// default backoff grows to two minutes, so after a long outage a node would
// stay away from etcd for 10-15 s after etcd's return (its leases expire
// meanwhile). Redialling at most every 300 ms keeps that under a second;
// the cost while etcd is down is a few connection attempts per second.
var reconnect = grpc.ConnectParams{
	Backoff: backoff.Config{
		BaseDelay:  50 * time.Millisecond,
		Multiplier: 1.6,
		Jitter:     0.2,
		MaxDelay:   300 * time.Millisecond,
	},
	MinConnectTimeout: time.Second,
}

// NewEtcdClient builds the etcd client from the [cluster] section. Creating
// it does not contact etcd; the first request does.
func NewEtcdClient(cfg setting.Cluster, log *zap.Logger) (*clientv3.Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cc := clientv3.Config{
		Endpoints:   cfg.EtcdEndpoints,
		DialTimeout: cfg.EtcdDialTimeout,
		// etcd refuses keep-alive pings more often than every 5 s by default
		// (--grpc-keepalive-min-time); a dead connection is noticed within
		// 5 s + 1 s, a closed one at once.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: time.Second,
		PermitWithoutStream:  true,
		DialOptions:          []grpc.DialOption{grpc.WithConnectParams(reconnect)},
		// A failed request is retried after 25 ms, not 50.
		BackoffWaitBetween: 25 * time.Millisecond,
		Username:           cfg.EtcdUsername,
		Password:           cfg.EtcdPassword,
		// The client logs every retry while etcd is away; this node logs
		// what matters (lease lost, registered again) itself.
		Logger: log.Named("etcd").WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)),
	}
	if cfg.EtcdCertFile != "" {
		info := transport.TLSInfo{CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile, TrustedCAFile: cfg.EtcdCAFile}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("config keys cluster.etcdCertFile, etcdKeyFile, etcdCAFile: %w", err)
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("config key cluster.etcdEndpoints: %w", err)
	}
	return cli, nil
}
