package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func writePair(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func served(t *testing.T, h *Holder) string {
	t.Helper()
	c, err := h.Config().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.Subject.CommonName
}

func TestReloadSwapsAndKeepsOnError(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, "one", cf, kf)
	h, err := Load(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	if got := served(t, h); got != "one" {
		t.Fatalf("served %q", got)
	}
	cfg := h.Config()
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "http/1.1" {
		t.Errorf("config %+v", cfg)
	}
	writePair(t, "two", cf, kf)
	// Handshakes during the reload see one certificate or the other, never nil.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if c, _ := cfg.GetCertificate(nil); c == nil {
				t.Error("no certificate during a reload")
				return
			}
		}
	})
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if got := served(t, h); got != "two" {
		t.Fatalf("after reload served %q", got)
	}
	if err := os.WriteFile(kf, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil {
		t.Fatal("a junk key reloaded")
	}
	if got := served(t, h); got != "two" {
		t.Fatalf("after a failed reload served %q", got)
	}
	if _, err := Load(filepath.Join(dir, "missing"), kf); err == nil {
		t.Fatal("missing files loaded")
	}
}
