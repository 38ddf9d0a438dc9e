// Package ident mints and verifies clientIds and messageIds.
//
// A clientId is the unpadded base64url encoding of 29 bytes:
//
//	version(1) | node(6) | random(12) | mac(10)
//
// mac = HMAC-SHA256(secret, version|node|random|systemId) truncated to 80 bits.
// Binding the systemId into the MAC means an id used with another system fails
// verification exactly like a forged one, before any lookup, and the node part
// lets a cluster route a unicast without a lookup. The 96 random bits make ids
// unguessable even to someone who knows the node.
package ident

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"sync"
	"sync/atomic"
)

const (
	version = 1
	nodeLen = 6
	randLen = 12
	macLen  = 10
	rawLen  = 1 + nodeLen + randLen + macLen
	// ClientIDLen is the length of every clientId this package mints.
	ClientIDLen = (rawLen*8 + 5) / 6
)

// NodeID names a node inside clientIds: 6 random bytes, shown as 12 hex digits.
type NodeID [nodeLen]byte

// String is the hex form used in etcd keys and logs.
func (n NodeID) String() string { return hex.EncodeToString(n[:]) }

// NewNodeID returns a random node id.
func NewNodeID() NodeID {
	var n NodeID
	if _, err := rand.Read(n[:]); err != nil {
		panic("ident: crypto/rand failed: " + err.Error())
	}
	return n
}

// ParseNodeID parses the hex form.
func ParseNodeID(s string) (NodeID, error) {
	var n NodeID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != nodeLen {
		return n, errors.New("node id must be 12 hex digits")
	}
	copy(n[:], b)
	return n, nil
}

// Minter mints and verifies clientIds with one secret. It is safe for
// concurrent use.
type Minter struct {
	node NodeID
	pool sync.Pool // of hash.Hash keyed with the secret
}

// NewMinter returns a Minter for the node and the MAC secret.
func NewMinter(node NodeID, secret []byte) *Minter {
	key := append([]byte(nil), secret...)
	m := &Minter{node: node}
	m.pool.New = func() any { return hmac.New(sha256.New, key) }
	return m
}

// Node is the node this Minter mints for.
func (m *Minter) Node() NodeID { return m.node }

func (m *Minter) mac(dst []byte, head []byte, systemID string) {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(head)
	h.Write([]byte(systemID))
	var sum [sha256.Size]byte
	copy(dst, h.Sum(sum[:0])[:macLen])
	m.pool.Put(h)
}

// Mint returns a new clientId for a client of systemID on this node.
func (m *Minter) Mint(systemID string) string {
	var raw [rawLen]byte
	raw[0] = version
	copy(raw[1:], m.node[:])
	if _, err := rand.Read(raw[1+nodeLen : 1+nodeLen+randLen]); err != nil {
		panic("ident: crypto/rand failed: " + err.Error())
	}
	m.mac(raw[1+nodeLen+randLen:], raw[:1+nodeLen+randLen], systemID)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// Verify checks that id is a well-formed clientId minted with this secret
// for systemID, and returns the node that holds it. Any failure means "not
// online": malformed, tampered, forged, or another system's id.
func (m *Minter) Verify(id, systemID string) (NodeID, bool) {
	var node NodeID
	if len(id) != ClientIDLen {
		return node, false
	}
	var raw [rawLen]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(id))
	if err != nil || n != rawLen || raw[0] != version {
		return node, false
	}
	var want [macLen]byte
	m.mac(want[:], raw[:1+nodeLen+randLen], systemID)
	if !hmac.Equal(want[:], raw[1+nodeLen+randLen:]) {
		return node, false
	}
	copy(node[:], raw[1:1+nodeLen])
	return node, true
}

// MessageIDs mints messageIds: 32 hex digits, a random per-process prefix and
// a counter, so they are unique across nodes and restarts without coordination.
type MessageIDs struct {
	prefix [8]byte
	seq    atomic.Uint64
}

// NewMessageIDs returns a generator with a fresh random prefix.
func NewMessageIDs() *MessageIDs {
	g := &MessageIDs{}
	if _, err := rand.Read(g.prefix[:]); err != nil {
		panic("ident: crypto/rand failed: " + err.Error())
	}
	return g
}

// Next returns a new messageId.
func (g *MessageIDs) Next() string {
	var b [16]byte
	copy(b[:8], g.prefix[:])
	binary.BigEndian.PutUint64(b[8:], g.seq.Add(1))
	return hex.EncodeToString(b[:])
}
