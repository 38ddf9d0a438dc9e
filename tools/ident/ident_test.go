package ident

import (
	"regexp"
	"testing"
)

var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestMintVerify(t *testing.T) {
	node := NewNodeID()
	m := NewMinter(node, []byte("secret"))
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := m.Mint("sys")
		if len(id) != ClientIDLen || len(id) > 64 || !urlSafe.MatchString(id) {
			t.Fatalf("bad id %q (len %d)", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		got, ok := m.Verify(id, "sys")
		if !ok || got != node {
			t.Fatalf("verify %q: ok=%v node=%v want %v", id, ok, got, node)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	m := NewMinter(NewNodeID(), []byte("secret"))
	other := NewMinter(m.Node(), []byte("other secret"))
	id := m.Mint("sys")
	flip := []byte(id)
	if flip[10] == 'A' {
		flip[10] = 'B'
	} else {
		flip[10] = 'A'
	}
	cases := map[string]struct{ id, sys string }{
		"empty":         {"", "sys"},
		"short":         {id[:len(id)-1], "sys"},
		"long":          {id + "A", "sys"},
		"not base64":    {id[:len(id)-1] + "!", "sys"},
		"tampered":      {string(flip), "sys"},
		"other system":  {id, "sys2"},
		"other secret":  {other.Mint("sys"), "sys"},
		"padding chars": {id[:len(id)-1] + "=", "sys"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, ok := m.Verify(c.id, c.sys); ok {
				t.Fatalf("Verify(%q, %q) accepted", c.id, c.sys)
			}
		})
	}
}

func TestNodeIDRoundTrip(t *testing.T) {
	n := NewNodeID()
	p, err := ParseNodeID(n.String())
	if err != nil || p != n {
		t.Fatalf("round trip %v -> %v, %v", n, p, err)
	}
	if _, err := ParseNodeID("xyz"); err == nil {
		t.Fatal("accepted bad node id")
	}
}

func TestMessageIDs(t *testing.T) {
	g := NewMessageIDs()
	a, b := g.Next(), g.Next()
	if a == b || len(a) != 32 || len(a) > 32 {
		t.Fatalf("ids %q %q", a, b)
	}
	if NewMessageIDs().Next() == a {
		t.Fatal("two generators collided")
	}
}

func BenchmarkMint(b *testing.B) {
	m := NewMinter(NewNodeID(), []byte("secret"))
	b.ReportAllocs()
	for b.Loop() {
		m.Mint("sys")
	}
}

func BenchmarkVerify(b *testing.B) {
	m := NewMinter(NewNodeID(), []byte("secret"))
	id := m.Mint("sys")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := m.Verify(id, "sys"); !ok {
			b.Fatal("verify failed")
		}
	}
}

func FuzzVerify(f *testing.F) {
	m := NewMinter(NodeID{1, 2, 3, 4, 5, 6}, []byte("secret"))
	f.Add(m.Mint("sys"), "sys")
	f.Add("", "")
	f.Add("AQIDBAUG____________________________AAA", "sys")
	f.Add("../../etc/passwd", "sys")
	f.Fuzz(func(t *testing.T, id, sys string) {
		node, ok := m.Verify(id, sys)
		if !ok {
			return
		}
		// Only ids this minter made can verify: re-encoding must round-trip
		// and name the minter's node.
		if node != m.Node() || len(id) != ClientIDLen || !urlSafe.MatchString(id) {
			t.Fatalf("accepted %q for %q (node %v)", id, sys, node)
		}
	})
}
