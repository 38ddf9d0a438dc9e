package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/servers/rpcwire"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a node certificate (no host names: they are not checked) and
// writes it, its key and the CA to files; it returns the loaded RPCTLS.
func (ca *testCA) issue(t *testing.T, name string) *RPCTLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{
		"node.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"node.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		"ca.pem":   ca.pem,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rt, err := LoadRPCTLS(filepath.Join(dir, "node.pem"), filepath.Join(dir, "node.key"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// tlsServer starts an RPC server for local behind mutual TLS.
func tlsServer(t *testing.T, local *fakeLocal, secret string, rt *RPCTLS) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newRPCServer(tls.NewListener(ln, rt.serverConfig()), local,
		func(*rpcwire.PresenceOp) *rpcwire.PresenceReply { return &rpcwire.PresenceReply{} },
		authKey([]byte(secret)), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return ln.Addr().String()
}

func TestRPCMutualTLS(t *testing.T) {
	ca, other := newTestCA(t, "cluster CA"), newTestCA(t, "another CA")
	local := newFakeLocal()
	addr := tlsServer(t, local, "s", ca.issue(t, "server"))
	try := func(rt *RPCTLS) error {
		d, _ := bareDialer(t, "s", time.Second)
		if rt != nil {
			d.tls = rt.clientConfig()
		}
		p := newPeer(d, local.id, NodeInfo{ID: local.id.String(), RPCAddr: addr})
		defer p.stop()
		pc, err := p.connect() // dial, TLS, secret handshake, one probe call
		if err != nil {
			return err
		}
		defer pc.cli.Close()
		var r rpcwire.UnicastReply
		call := pc.cli.Go(rpcwire.RPCUnicast, &rpcwire.UnicastOp{ClientID: "online"}, &r, nil)
		<-call.Done
		if call.Error == nil && !r.Online {
			t.Fatal("the call ran but the reply is wrong")
		}
		return call.Error
	}
	if err := try(ca.issue(t, "client")); err != nil {
		t.Fatalf("a peer with a certificate of the cluster CA: %v", err)
	}
	if err := try(nil); err == nil {
		t.Fatal("a peer without TLS got through")
	}
	rogue := other.issue(t, "rogue")
	rogue.CAs = ca.issue(t, "x").CAs // trusts the server, presents a foreign certificate
	if err := try(rogue); err == nil {
		t.Fatal("a peer with a certificate of another CA got through")
	}
	if err := try(other.issue(t, "misled")); err == nil {
		t.Fatal("a peer trusted a server whose certificate its CA did not sign")
	}
}
