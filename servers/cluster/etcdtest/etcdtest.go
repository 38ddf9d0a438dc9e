// Package etcdtest runs a real etcd server inside a test process
// (go.etcd.io/etcd/server/v3/embed) that can be stopped and restarted on the
// same ports and data. Only tests import it, so the server is not linked
// into the go-websocket binary.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one in-process etcd member.
type Server struct {
	t        testing.TB
	dir      string
	clientU  url.URL
	peerU    url.URL
	mu       sync.Mutex
	e        *embed.Etcd
	Endpoint string // host:port for clients
}

// Start starts a server on free loopback ports; it is stopped when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		s.clientU = url.URL{Scheme: "http", Host: freeAddr(t)}
		s.peerU = url.URL{Scheme: "http", Host: freeAddr(t)}
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("start etcd: %v", err)
		}
	}
	s.Endpoint = s.clientU.Host
	t.Cleanup(s.Stop)
	return s
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientU}
	cfg.AdvertiseClientUrls = []url.URL{s.clientU}
	cfg.ListenPeerUrls = []url.URL{s.peerU}
	cfg.AdvertisePeerUrls = []url.URL{s.peerU}
	cfg.InitialCluster = cfg.Name + "=" + s.peerU.String()
	cfg.LogLevel = "panic"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcd not ready within 30 s")
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
	return nil
}

// Stop stops the server (its data stays for Restart).
func (s *Server) Stop() {
	s.mu.Lock()
	e := s.e
	s.e = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts the stopped server again on the same ports and data.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the old listeners may linger briefly
	}
	s.t.Fatalf("restart etcd: %v", err)
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
