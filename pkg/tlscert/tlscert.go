// Package tlscert serves the HTTP/WebSocket listener's certificate and swaps
// it atomically when the files are read again (on SIGHUP): handshakes after
// the swap get the new certificate, connections already open keep theirs.
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"
)

// Holder holds the certificate read from a PEM certificate (chain) file and
// a PEM private key file.
type Holder struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads the pair; the error names the files.
func Load(certFile, keyFile string) (*Holder, error) {
	h := &Holder{certFile: certFile, keyFile: keyFile}
	if err := h.Reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// Reload reads both files again. On any error the certificate in use stays.
func (h *Holder) Reload() error {
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("TLS key pair %s / %s: %w", h.certFile, h.keyFile, err)
	}
	if c.Leaf == nil && len(c.Certificate) > 0 {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", h.certFile, err)
		}
	}
	h.cur.Store(&c)
	return nil
}

// Current is the certificate new handshakes get.
func (h *Holder) Current() *tls.Certificate { return h.cur.Load() }

// NotAfter is when the current certificate expires.
func (h *Holder) NotAfter() time.Time {
	if c := h.cur.Load(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// Config is the listener's TLS configuration: TLS 1.2 or later, HTTP/1.1
// only (WebSocket upgrades need it), the certificate taken from the holder
// at every handshake.
func (h *Holder) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return h.cur.Load(), nil
		},
	}
}
