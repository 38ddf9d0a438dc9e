package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/go-websocket/go-websocket/tools/ident"
)

// The RPC port speaks net/rpc (gob) only after a mutual challenge-response
// that proves both ends hold the cluster secret, so a process without it
// can neither call a node nor pose as one:
//
//	server -> client: magic(8) | serverNode(6) | serverNonce(32)
//	client -> server: clientNode(6) | clientNonce(32) | HMAC(k, "c"|sn|cn|clientNode|serverNode)
//	server -> client: HMAC(k, "s"|cn|sn|serverNode|clientNode)
//
// k is derived from the secret, so the clientId MAC key is never used on
// the wire. The client also checks that the server is the node the peer
// table names, so a stale address that now belongs to another node is not
// mistaken for the old one.
const (
	authMagic  = "GOWSRPC1"
	nonceLen   = 32
	macSize    = sha256.Size
	helloLen   = len(authMagic) + len(ident.NodeID{}) + nonceLen
	answerLen  = len(ident.NodeID{}) + nonceLen + macSize
	authLabel  = "go-websocket/rpc-auth/v1"
	roleClient = 'c'
	roleServer = 's'
)

var (
	errBadMagic  = errors.New("not a go-websocket RPC port")
	errBadSecret = errors.New("peer does not hold the cluster secret")
	errWrongNode = errors.New("another node answers at this address")
)

// authKey derives the handshake key from the cluster secret.
func authKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(authLabel))
	return m.Sum(nil)
}

func proof(key []byte, role byte, nonceA, nonceB []byte, nodeA, nodeB ident.NodeID) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte{role})
	m.Write(nonceA)
	m.Write(nonceB)
	m.Write(nodeA[:])
	m.Write(nodeB[:])
	return m.Sum(nil)
}

func nonce() ([]byte, error) {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// serverHandshake authenticates an accepted connection and returns the
// client's node id. The caller sets the deadline.
func serverHandshake(c net.Conn, key []byte, self ident.NodeID) (ident.NodeID, error) {
	var peer ident.NodeID
	sn, err := nonce()
	if err != nil {
		return peer, err
	}
	hello := make([]byte, 0, helloLen)
	hello = append(append(append(hello, authMagic...), self[:]...), sn...)
	if _, err := c.Write(hello); err != nil {
		return peer, fmt.Errorf("write hello: %w", err)
	}
	ans := make([]byte, answerLen)
	if _, err := io.ReadFull(c, ans); err != nil {
		return peer, fmt.Errorf("read answer: %w", err)
	}
	copy(peer[:], ans)
	cn := ans[len(peer) : len(peer)+nonceLen]
	if !hmac.Equal(ans[len(peer)+nonceLen:], proof(key, roleClient, sn, cn, peer, self)) {
		return peer, errBadSecret
	}
	if _, err := c.Write(proof(key, roleServer, cn, sn, self, peer)); err != nil {
		return peer, fmt.Errorf("write proof: %w", err)
	}
	return peer, nil
}

// clientHandshake authenticates the server of a dialled connection and
// checks that it is the node want. The caller sets the deadline.
func clientHandshake(c net.Conn, key []byte, self, want ident.NodeID) error {
	hello := make([]byte, helloLen)
	if _, err := io.ReadFull(c, hello); err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if string(hello[:len(authMagic)]) != authMagic {
		return errBadMagic
	}
	var server ident.NodeID
	copy(server[:], hello[len(authMagic):])
	sn := hello[len(authMagic)+len(server):]
	cn, err := nonce()
	if err != nil {
		return err
	}
	ans := make([]byte, 0, answerLen)
	ans = append(append(append(ans, self[:]...), cn...), proof(key, roleClient, sn, cn, self, server)...)
	if _, err := c.Write(ans); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	got := make([]byte, macSize)
	if _, err := io.ReadFull(c, got); err != nil {
		// A server that does not accept our proof closes the connection.
		return fmt.Errorf("read proof (the peer may have refused our cluster secret): %w", err)
	}
	if !hmac.Equal(got, proof(key, roleServer, cn, sn, server, self)) {
		return errBadSecret
	}
	if server != want {
		return fmt.Errorf("%w: node %s, not %s", errWrongNode, server, want)
	}
	return nil
}

// deadlineConn bounds every write, and closes the connection when one
// fails, so a peer that stops reading can never block a sender (net/rpc
// writes a request inside Client.Go, before any timer of ours can run).
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	dead    chan struct{} // closed when a read or write has failed
	once    sync.Once
}

func newDeadlineConn(c net.Conn, timeout time.Duration) *deadlineConn {
	return &deadlineConn{Conn: c, timeout: timeout, dead: make(chan struct{})}
}

func (d *deadlineConn) markDead() { d.once.Do(func() { close(d.dead) }) }

func (d *deadlineConn) Read(b []byte) (int, error) {
	n, err := d.Conn.Read(b)
	if err != nil {
		d.markDead()
	}
	return n, err
}

func (d *deadlineConn) Write(b []byte) (int, error) {
	_ = d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	n, err := d.Conn.Write(b)
	if err != nil {
		d.markDead()
		_ = d.Conn.Close()
	}
	return n, err
}
