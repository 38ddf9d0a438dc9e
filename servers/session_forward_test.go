package servers

import (
	"net/url"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/define"
)

// A frame that reaches a resumed client through its old connection (a
// broadcast whose recipients were listed before the resume, or a unicast
// that looked the client up just before it) must be written to the new
// connection, even when the new connection's write side is idle: the
// writer that takes the forwarded frame is the one that must be flushed.
func TestFrameForwardedAfterResumeIsWritten(t *testing.T) {
	for _, tc := range []struct {
		name   string
		others int // other recipients of the same delivery
	}{
		{"unicast", 0},
		{"broadcast", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sessionHarness(t, time.Minute, func(o *Options) { o.MembershipEvents = false })
			a, w := h.dialSession("s1", nil)
			var others []*wsClient
			for range tc.others {
				b, _ := h.dialSession("s1", nil)
				others = append(others, b)
			}
			h.drop(a)
			old := h.node.hub.lookup("s1", a.id)
			r, rw := h.dialSession("s1", url.Values{"resume": {w.Data.ResumeToken}, "lastSeq": {"0"}})
			if !rw.Data.Resumed || rw.Data.ClientID != a.id {
				t.Fatalf("resume welcome %+v", rw)
			}
			if cur := h.node.hub.lookup("s1", a.id); cur == old {
				t.Fatal("the hub still holds the old connection after the resume")
			}
			// The new connection's write side is idle now (the welcome is
			// out). Deliver through the old connection, as a send that
			// listed its recipients before the resume does.
			recipients := []*Client{old}
			for _, b := range others {
				recipients = append(recipients, h.node.hub.lookup("s1", b.id))
			}
			f := messageFrame("m-forwarded", &define.Message{Data: []byte(`"late"`)})
			if n := h.node.hub.flusher.deliver(recipients, f); n != len(recipients) {
				t.Fatalf("delivered to %d of %d", n, len(recipients))
			}
			got := r.nextSeq()
			if got.MessageID != "m-forwarded" || got.Seq != 1 {
				t.Fatalf("resumed client got %s, want m-forwarded with seq 1", got.raw)
			}
			for _, b := range others {
				if got := b.nextSeq(); got.MessageID != "m-forwarded" {
					t.Fatalf("other recipient got %s", got.raw)
				}
			}
			// Later frames still flow.
			f2 := messageFrame("m-next", &define.Message{Data: []byte(`"next"`)})
			h.node.hub.flusher.deliver([]*Client{h.node.hub.lookup("s1", a.id)}, f2)
			if got := r.nextSeq(); got.MessageID != "m-next" || got.Seq != 2 {
				t.Fatalf("resumed client got %s, want m-next with seq 2", got.raw)
			}
		})
	}
}
