package e2e

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
)

// writeCA makes a CA and one certificate it signs (usable by any node: no
// host names) and writes ca.pem, node.pem and node.key into dir.
func writeCA(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"node.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"node.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRPCMutualTLS runs a cluster with mutual TLS on the RPC port:
// cross-node calls work, and the port speaks only TLS.
func TestRPCMutualTLS(t *testing.T) {
	dir := t.TempDir()
	writeCA(t, dir)
	c := newCluster(t, 3,
		"GOWS_CLUSTER_TLSCERT="+filepath.Join(dir, "node.pem"),
		"GOWS_CLUSTER_TLSKEY="+filepath.Join(dir, "node.key"),
		"GOWS_CLUSTER_TLSCA="+filepath.Join(dir, "ca.pem"))
	c.register("app")
	cs := c.connectSpread("app", 6, false)
	for _, cl := range cs {
		c.sendTo(cl)
	}
	c.sendSystem(len(cs), cs)
	// Plain TCP gets no go-websocket hello: the port waits for a TLS
	// ClientHello, and a client without a certificate is refused.
	n := c.nodes[0]
	conn, err := net.DialTimeout("tcp", n.rpcAddr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 8)
	if k, _ := conn.Read(buf); k > 0 && string(buf[:k]) == "GOWSRPC1"[:k] {
		t.Fatal("the RPC port spoke the plain handshake although TLS is on")
	}
	conn.Close()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", n.rpcAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test checks that the server refuses
	if err == nil {
		_ = tc.SetReadDeadline(time.Now().Add(time.Second))
		_, err = tc.Read(buf)
		tc.Close()
	}
	if err == nil {
		t.Fatal("a TLS client without a certificate got data from the RPC port")
	}
}
