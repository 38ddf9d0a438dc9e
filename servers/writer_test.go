package servers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/go-websocket/go-websocket/define"
)

func TestUnwritten(t *testing.T) {
	a, b, c := []byte("aaaa"), []byte("bb"), []byte("cccccc")
	batch := [][]byte{a, b, c}
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{0, []string{"aaaa", "bb", "cccccc"}},
		{1, []string{"aaa", "bb", "cccccc"}},
		{4, []string{"bb", "cccccc"}},
		{5, []string{"b", "cccccc"}},
		{6, []string{"cccccc"}},
		{11, []string{"c"}},
		{12, nil},
	} {
		got := unwritten(batch, tc.n)
		var s []string
		for _, f := range got {
			s = append(s, string(f))
		}
		if fmt.Sprint(s) != fmt.Sprint(tc.want) {
			t.Errorf("unwritten(%d) = %q, want %q", tc.n, s, tc.want)
		}
	}
	if string(batch[0]) != "aaaa" {
		t.Fatal("unwritten changed the caller's batch")
	}
}

// Frames queued while someone else owns a client's write side leave with
// the owner's next flush, in one pass, in order; the flush gives the write
// side back.
func TestFlushTakesFramesQueuedMeanwhile(t *testing.T) {
	h := newHarness(t, nil)
	wc := h.dial("s1")
	c := h.node.hub.lookup("s1", wc.id)
	if c == nil {
		t.Fatal("client not found")
	}
	if c.w.rc == nil {
		t.Skip("no non-blocking writes on this system")
	}
	c.w.claim() // as a broadcast that claimed the client would
	for i := range 3 {
		ok, claimed, _ := c.w.push(messageFrame(fmt.Sprint(i), msg(fmt.Sprint(i))))
		if !ok || claimed {
			t.Fatalf("push %d: accepted %v claimed %v (the write side is owned)", i, ok, claimed)
		}
	}
	if n := c.w.flush(); n != 3 {
		t.Fatalf("flush took %d frames, want 3", n)
	}
	for i := range 3 {
		if p := wc.next(); p.MessageID != fmt.Sprint(i) {
			t.Fatalf("frame %d: %+v", i, p)
		}
	}
	c.w.mu.Lock()
	owned := c.w.owned
	c.w.mu.Unlock()
	if owned {
		t.Fatal("the write side is still owned after the queue was flushed")
	}
	if _, claimed, _ := c.w.push(messageFrame("x", msg(`"x"`))); !claimed {
		t.Fatal("a push to an idle writer did not claim it")
	}
	c.w.flush()
	if p := wc.next(); p.MessageID != "x" {
		t.Fatalf("got %+v", p)
	}
}

// Many publishers broadcasting at once: every member gets every message,
// each publisher's messages in the order it sent them, and no client is
// left waiting in the flush FIFO once the broadcasts have returned.
func TestConcurrentBroadcastsKeepOrderPerPublisher(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MembershipEvents = false; o.Hub.QueueLength = 4096 })
	const members, publishers, each = 40, 16, 40
	ctx := context.Background()
	clients := make([]*wsClient, members)
	for i := range clients {
		clients[i] = h.dial("s1")
		if err := h.node.BindToGroup(ctx, "s1", clients[i].id, "g", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				res, err := h.node.SendToGroup(ctx, "s1", "g", msg(fmt.Sprintf(`[%d,%d]`, p, k)))
				if err == nil && res.Recipients != members {
					err = fmt.Errorf("recipients %d", res.Recipients)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fl := &h.node.hub.flusher
	fl.mu.Lock()
	waiting := len(fl.fifo) - fl.head
	fl.mu.Unlock()
	if waiting != 0 {
		t.Fatalf("%d clients left in the flush FIFO after every broadcast returned", waiting)
	}
	for _, c := range clients {
		next := make([]int, publishers)
		for range publishers * each {
			var pk [2]int
			p := c.next()
			if _, err := fmt.Sscanf(string(p.Data), "[%d,%d]", &pk[0], &pk[1]); err != nil {
				t.Fatalf("client %s: %s: %v", c.id, p.Data, err)
			}
			if pk[1] != next[pk[0]] {
				t.Fatalf("client %s: publisher %d message %d arrived, want %d", c.id, pk[0], pk[1], next[pk[0]])
			}
			next[pk[0]]++
		}
	}
}

// A client that stops reading is closed once a write cannot complete within
// the write timeout, and that is counted as write_timeout.
func TestWriteTimeoutIsCounted(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Hub.WriteTimeout, o.Hub.QueueLength = 200*time.Millisecond, 100000
	})
	wc := h.dial("s1") // never reads again
	timeouts := h.node.metrics.Disconnects.WithLabelValues(define.ReasonWriteTimeout)
	normal := h.node.metrics.Disconnects.WithLabelValues(define.ReasonNormal)
	before, beforeNormal := testutil.ToFloat64(timeouts), testutil.ToFloat64(normal)
	big := msg(`"` + strings.Repeat("x", 64<<10) + `"`)
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for online := true; online; {
		if time.Now().After(deadline) {
			t.Fatal("the client that does not read is still online")
		}
		if _, err := h.node.SendToClient(ctx, "s1", wc.id, big); err != nil {
			online = false
		}
	}
	for testutil.ToFloat64(timeouts) == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d := testutil.ToFloat64(timeouts) - before; d != 1 {
		t.Fatalf("write_timeout moved by %v, want 1", d)
	}
	if d := testutil.ToFloat64(normal) - beforeNormal; d != 0 {
		t.Fatalf("normal moved by %v, want 0", d)
	}
}

// A broadcast allocates nothing per recipient once clients have been
// written to before: the frame is shared, queue buffers are kept small and
// reused, the claim list and the flush FIFO are pooled.
func TestBroadcastDoesNotAllocatePerRecipient(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	h := newHarness(t, func(o *Options) { o.MembershipEvents = false; o.Hub.QueueLength = 4096 })
	const n = 50
	clients := make([]*Client, n)
	for i := range clients {
		wc := h.dial("s1") // the test never reads: frames stay in socket buffers
		if clients[i] = h.node.hub.lookup("s1", wc.id); clients[i] == nil {
			t.Fatal("client not found")
		}
	}
	f := messageFrame("m", msg(`"x"`))
	fl := &h.node.hub.flusher
	fl.deliver(clients, f) // warm up buffers and pools
	allocs := testing.AllocsPerRun(50, func() {
		if got := fl.deliver(clients, f); got != n {
			t.Fatalf("delivered to %d of %d", got, n)
		}
	})
	if allocs > 2 {
		t.Fatalf("%.1f allocations per broadcast to %d clients", allocs, n)
	}
}
