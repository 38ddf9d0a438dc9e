package cluster

import (
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/go-websocket/go-websocket/pkg/setting"
)

// NewEtcdClient builds the etcd client from the [cluster] section. Creating
// it does not contact etcd; the first request does.
func NewEtcdClient(cfg setting.Cluster, log *zap.Logger) (*clientv3.Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cc := clientv3.Config{
		Endpoints:            cfg.EtcdEndpoints,
		DialTimeout:          cfg.EtcdDialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		PermitWithoutStream:  true,
		Username:             cfg.EtcdUsername,
		Password:             cfg.EtcdPassword,
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
