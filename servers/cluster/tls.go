package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// RPCTLS is mutual TLS on the RPC port: every node presents a certificate
// signed by the cluster's CA and accepts only peers whose certificate is.
// The certificate's host names are not checked (peers are dialled at the
// addresses etcd names, often bare IPs); which node answers is proven by
// the handshake with the cluster secret that runs inside the TLS session.
type RPCTLS struct {
	Cert tls.Certificate
	CAs  *x509.CertPool
}

// LoadRPCTLS reads the node's certificate and key and the CA (PEM files).
func LoadRPCTLS(certFile, keyFile, caFile string) (*RPCTLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("config keys cluster.tlsCert, cluster.tlsKey: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("config key cluster.tlsCA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("config key cluster.tlsCA: no PEM certificate in %s", caFile)
	}
	return &RPCTLS{Cert: cert, CAs: pool}, nil
}

// verify checks the peer's chain against the CA, for either end.
func (t *RPCTLS) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: t.CAs, Intermediates: x509.NewCertPool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("peer certificate not signed by cluster.tlsCA: %w", err)
	}
	return nil
}

func (t *RPCTLS) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{t.Cert},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: t.verify,
	}
}

func (t *RPCTLS) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.Cert},
		// The chain is checked by VerifyConnection; host names are not
		// (see RPCTLS).
		InsecureSkipVerify: true, //nolint:gosec // chain verified in VerifyConnection
		VerifyConnection:   t.verify,
	}
}
