package cluster

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/go-websocket/go-websocket/tools/ident"
)

func holderIDs(pc *presenceCache, system, group string) []ident.NodeID {
	var out []ident.NodeID
	for n := range pc.holders[groupKey{system, group}] {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b ident.NodeID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func TestPresenceCacheIndexes(t *testing.T) {
	pc := newPresenceCache()
	a, b := ident.NewNodeID(), ident.NewNodeID()
	put := func(node ident.NodeID, id, user string, groups ...string) {
		e := &entry{node: node, id: id, system: "s", user: user}
		for _, g := range groups {
			e.groups = append(e.groups, membership{group: g})
		}
		pc.mu.Lock()
		pc.put(e)
		pc.mu.Unlock()
	}
	put(a, "a1", "u", "g1", "g2")
	put(a, "a2", "", "g1")
	put(b, "b1", "u", "g2")
	if got := len(pc.groups[groupKey{"s", "g1"}]); got != 2 {
		t.Fatalf("g1 has %d members, want 2", got)
	}
	if h := holderIDs(pc, "s", "g2"); len(h) != 2 {
		t.Fatalf("g2 holders %v, want both nodes", h)
	}
	if len(pc.users[groupKey{"s", "u"}]) != 2 {
		t.Fatal("user index wrong")
	}
	// A client that leaves g2 and changes user: indexes follow.
	put(a, "a1", "v", "g1")
	if pc.holders[groupKey{"s", "g2"}][a] != 0 || len(pc.groups[groupKey{"s", "g2"}]) != 1 {
		t.Fatalf("g2 after a1 left: holders %v", pc.holders[groupKey{"s", "g2"}])
	}
	if len(pc.users[groupKey{"s", "u"}]) != 1 || len(pc.users[groupKey{"s", "v"}]) != 1 {
		t.Fatal("user index not moved")
	}
	pc.mu.Lock()
	pc.del(b, "b1")
	pc.mu.Unlock()
	if _, ok := pc.groups[groupKey{"s", "g2"}]; ok {
		t.Fatal("an empty group stays indexed")
	}
	if _, ok := pc.holders[groupKey{"s", "g2"}]; ok {
		t.Fatal("an empty group keeps holders")
	}
	lost := pc.dropNode(a)
	if len(lost) != 2 || len(pc.systems) != 0 || len(pc.groups) != 0 || len(pc.holders) != 0 || len(pc.users) != 0 {
		t.Fatalf("after dropping the last node: lost %d, indexes %d %d %d %d", len(lost),
			len(pc.systems), len(pc.groups), len(pc.holders), len(pc.users))
	}
}

// TestPresenceCacheMemory reports the heap per cached client (rooms of 10,
// two groups per client, as in the capacity model).
func TestPresenceCacheMemory(t *testing.T) {
	const clients = 50000
	nodes := []ident.NodeID{ident.NewNodeID(), ident.NewNodeID(), ident.NewNodeID()}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pc := newPresenceCache()
	for i := range clients {
		val := fmt.Sprintf(`{"s":"system","u":"user-%d","g":{"spread-%d":{},"placed-%d":{}}}`, i, i/10, i/10+clients)
		e, ok := decodeEntry(nodes[i%3], fmt.Sprintf("A%038d", i), []byte(val))
		if !ok {
			t.Fatal("decode")
		}
		pc.mu.Lock()
		pc.put(e)
		pc.mu.Unlock()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / clients
	t.Logf("presence cache: %.0f bytes of heap per client (two groups and a user each, %d clients)", per, clients)
	runtime.KeepAlive(pc)
}
