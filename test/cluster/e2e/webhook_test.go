package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// hookSink counts every event it receives, duplicates included.
type hookSink struct {
	mu     sync.Mutex
	seen   map[string]int // event id: deliveries
	events []hookEv
}

type hookEv struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
	Reason    string `json:"reason"`
}

func (s *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p struct {
		Events []hookEv `json:"events"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	for _, ev := range p.Events {
		s.seen[ev.ID]++
		s.events = append(s.events, ev)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// count returns how many events (duplicates included) match.
func (s *hookSink) count(match func(hookEv) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ev := range s.events {
		if match(ev) {
			n++
		}
	}
	return n
}

// In a cluster each event is posted once, by the node that saw it; after a
// kill -9 the clients of the dead node are announced (leave and disconnect
// with node_lost) by exactly one survivor.
func TestWebhooksInClusterAndNodeLost(t *testing.T) {
	sink := &hookSink{seen: map[string]int{}}
	recv := httptest.NewServer(sink)
	defer recv.Close()
	c := newCluster(t, 3)
	if r := c.post("register", "", map[string]any{"systemId": "hooks", "webhookUrl": recv.URL,
		"webhookEvents": []string{"connect", "disconnect", "join", "leave"}}); r.Code != 0 {
		t.Fatalf("register: %s", r)
	}
	c.register("unused") // waits for every node to know systems registered before it
	cs := c.connectSpread("hooks", 12, false)
	for _, cl := range cs {
		if r := c.post("bind_to_group", "hooks", map[string]any{"clientId": cl.currentID(), "groupName": "room"}); r.Code != 0 {
			t.Fatalf("bind: %s", r)
		}
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 15s: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("a connect and a join per client", func() bool {
		return sink.count(func(e hookEv) bool { return e.Type == "connect" || e.Type == "join" }) >= 2*len(cs)
	})
	victim := c.nodes[1]
	var dead []string
	for _, cl := range cs {
		if nodeOf(t, cl.currentID()) == victim.id {
			dead = append(dead, cl.currentID())
		}
	}
	victim.kill9()
	isDead := map[string]bool{}
	for _, id := range dead {
		isDead[id] = true
	}
	lostOf := func(id string) func(hookEv) bool {
		return func(e hookEv) bool { return e.ClientID == id && e.Type == "disconnect" && e.Reason == "node_lost" }
	}
	wait("a node_lost disconnect for every client of the killed node", func() bool {
		for _, id := range dead {
			if sink.count(lostOf(id)) == 0 {
				return false
			}
		}
		return true
	})
	// Give a second survivor the time it would need to post them too.
	time.Sleep(3 * time.Second)
	for _, id := range dead {
		if n := sink.count(lostOf(id)); n != 1 {
			t.Errorf("client %s of the killed node: %d node_lost disconnects, want exactly 1", id, n)
		}
		leave := sink.count(func(e hookEv) bool {
			return e.ClientID == id && e.Type == "leave" && e.GroupName == "room" && e.Reason == "node_lost"
		})
		if leave != 1 {
			t.Errorf("client %s of the killed node: %d node_lost leaves of room, want 1", id, leave)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for id, n := range sink.seen {
		if n != 1 {
			t.Errorf("event %s posted %d times", id, n)
		}
	}
	for _, ev := range sink.events {
		if ev.Reason == "node_lost" && !isDead[ev.ClientID] {
			t.Errorf("node_lost event for a client of a survivor: %+v", ev)
		}
	}
	t.Logf("%d clients, %d on the killed node; %d events, each posted once", len(cs), len(dead), len(sink.events))
}
