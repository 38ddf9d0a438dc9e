// Package etcdtest runs a real etcd server inside a test process
// (go.etcd.io/etcd/server/v3/embed) that can be stopped and restarted on the
// same address and data. Only tests import it, so the server is not linked
// into the go-websocket binary.
//
// Clients reach the server through a small TCP relay on Endpoint. Stop
// closes the relay and every connection through it at once, as a crash or
// a cut cable would, then stops the server; without the relay, embed's
// graceful stop keeps open watch streams alive for up to 7 seconds.
package etcdtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one in-process etcd member behind a relay.
type Server struct {
	t        testing.TB
	dir      string
	clientU  url.URL // the server's own client URL (behind the relay)
	peerU    url.URL
	Endpoint string // host:port clients use (the relay)

	mu    sync.Mutex
	e     *embed.Etcd
	relay *relay
}

// Start starts a server on free loopback ports; it is stopped when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.clientU = url.URL{Scheme: "http", Host: freeAddr(t)}
		s.peerU = url.URL{Scheme: "http", Host: freeAddr(t)}
		if err = s.startServer(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	r, err := newRelay("127.0.0.1:0", s.clientU.Host)
	if err != nil {
		t.Fatalf("etcd relay: %v", err)
	}
	s.relay = r
	s.Endpoint = r.ln.Addr().String()
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

func (s *Server) startServer() error {
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
		return errors.New("etcd not ready within 30 s")
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
	return nil
}

// Stop cuts every client connection at once and stops the server (its
// data stays for Restart). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	e, r := s.e, s.relay
	s.e, s.relay = nil, nil
	s.mu.Unlock()
	if r != nil {
		r.close()
	}
	if e != nil {
		e.Close()
	}
}

// Restart starts the stopped server again on the same address and data.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.startServer(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old listeners may linger briefly
	}
	if err != nil {
		s.t.Fatalf("restart etcd: %v", err)
	}
	for attempt := 0; attempt < 50; attempt++ {
		var r *relay
		if r, err = newRelay(s.Endpoint, s.clientU.Host); err == nil {
			s.mu.Lock()
			s.relay = r
			s.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restart etcd relay: %v", err)
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

// relay copies TCP connections from its listener to target.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newRelay(addr, target string) (*relay, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", r.target, 2*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !r.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		r.wg.Add(2)
		go r.pipe(in, out)
		go r.pipe(out, in)
	}
}

func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}
