package security

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// secureEnv is the production-like security configuration (no rate limit,
// so that tests may make many calls).
func secureEnv() env {
	return env{
		kAPITokens:     "tokA-" + randHex(12) + ",tokB-" + randHex(12),
		kConnectSecret: "connect-" + randHex(16),
		kOrigins:       "https://app.example.com,https://*.example.com",
	}
}

// broadcastResult is the data of send_to_group / send_to_system.
type broadcastResult struct {
	MessageID  string `json:"messageId"`
	Recipients *int   `json:"recipients"`
}

// SPEC 1/2: a system can never see, address or close another system's
// clients: a foreign clientId behaves exactly like an unknown one on every
// endpoint and both path sets, and broadcasts and lists stay inside the
// system. A marker message proves afterwards that nothing leaked onto the
// other tenant's socket.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	n := startNode(t, secureEnv())
	const A, B, room = "tenant-a", "tenant-b", "shared-room"
	n.register(t, A, B)
	a1 := n.dial(t, A)
	b1 := n.dial(t, B)
	for _, p := range []struct {
		sys string
		c   *wstest.Client
	}{{A, a1}, {B, b1}} {
		n.ok(t, "bind_to_group", p.sys, map[string]string{"clientId": p.c.ID, "groupName": room, "userId": p.sys})
		if ev := p.c.NextFrame(t, 5*time.Second); ev.Code != 1001 {
			t.Fatalf("want the own 1001 event, got code %d", ev.Code)
		}
	}

	for _, prefix := range prefixes {
		what := func(s string) string { return s + " on " + prefix }
		// B addresses A's client: exactly like an unknown client.
		wantCode(t, n.postAt(t, prefix, "send_to_client", B, map[string]any{"clientId": a1.ID, "data": "from-b"}), 10006, what("send_to_client of A's client by B"))
		wantCode(t, n.postAt(t, prefix, "bind_to_group", B, map[string]any{"clientId": a1.ID, "groupName": room}), 10006, what("bind_to_group of A's client by B"))
		wantCode(t, n.postAt(t, prefix, "bind_to_group", B, map[string]any{"clientId": a1.ID, "groupName": "b-only"}), 10006, what("bind_to_group of A's client to a new group by B"))
		wantCode(t, n.postAt(t, prefix, "unbind_from_group", B, map[string]any{"clientId": a1.ID, "groupName": room}), 10006, what("unbind_from_group of A's client by B"))
		wantCode(t, n.postAt(t, prefix, "close_client", B, map[string]any{"clientId": a1.ID}), 10006, what("close_client of A's client by B"))

		r := n.postAt(t, prefix, "is_online", B, map[string]any{"clientId": a1.ID})
		var on struct {
			Online *bool `json:"online"`
		}
		decode(t, r.Data, &on)
		if r.Code != 0 || on.Online == nil || *on.Online {
			t.Errorf("%s: %s, want online false", what("is_online of A's client by B"), r)
		}

		r = n.postAt(t, prefix, "send_to_clients", B, map[string]any{"clientIds": []string{a1.ID, b1.ID}, "data": "from-b-many"})
		var many struct {
			MessageID string   `json:"messageId"`
			Delivered *int     `json:"delivered"`
			Offline   []string `json:"offline"`
		}
		decode(t, r.Data, &many)
		if r.Code != 0 || many.Delivered == nil || *many.Delivered != 1 || len(many.Offline) != 1 || many.Offline[0] != a1.ID {
			t.Errorf("%s: %s, want delivered 1 and offline [A's client]", what("send_to_clients [A's, B's] by B"), r)
		}
		b1.ExpectID(t, many.MessageID, what("send_to_clients by B"))

		for _, group := range []string{"", room} {
			if got := n.onlineList(t, B, group); len(got) != 1 || got[0] != b1.ID {
				t.Errorf("%s: B's online list (group %q) = %v, want only B's client", what("get_online_list"), group, got)
			}
			if got := n.onlineList(t, A, group); len(got) != 1 || got[0] != a1.ID {
				t.Errorf("%s: A's online list (group %q) = %v, want only A's client", what("get_online_list"), group, got)
			}
		}

		for _, call := range []struct{ ep, body string }{
			{"send_to_group", `{"groupName":"` + room + `","data":"b-group"}`},
			{"send_to_system", `{"data":"b-system"}`},
		} {
			r := n.postAt(t, prefix, call.ep, B, call.body)
			var br broadcastResult
			decode(t, r.Data, &br)
			if r.Code != 0 || br.Recipients == nil || *br.Recipients != 1 {
				t.Errorf("%s: %s, want recipients 1 (B's client only)", what(call.ep+" by B"), r)
			}
			b1.ExpectID(t, br.MessageID, what(call.ep+" by B"))
		}
		// And A's side: A cannot reach B's client either.
		wantCode(t, n.postAt(t, prefix, "send_to_client", A, map[string]any{"clientId": b1.ID, "data": "from-a"}), 10006, what("send_to_client of B's client by A"))
		wantCode(t, n.postAt(t, prefix, "close_client", A, map[string]any{"clientId": b1.ID}), 10006, what("close_client of B's client by A"))
	}

	// Nothing reached the other tenant's socket: each client's next frame is
	// its own system's marker.
	if !n.isOnline(t, A, a1.ID) || !n.isOnline(t, B, b1.ID) {
		t.Fatalf("a client was closed by the other tenant")
	}
	if got := n.onlineList(t, A, room); len(got) != 1 || got[0] != a1.ID {
		t.Errorf("A's group %s = %v after B's unbind attempts, want A's client", room, got)
	}
	a1.ExpectID(t, n.sendTo(t, A, a1.ID, `"marker-a"`), "A's marker (anything from B would arrive before it)")
	b1.ExpectID(t, n.sendTo(t, B, b1.ID, `"marker-b"`), "B's marker (anything from A would arrive before it)")

	// B's client leaving B's group (closed by B) sends no 1002 to A's group
	// of the same name.
	n.ok(t, "close_client", B, map[string]string{"clientId": b1.ID})
	if code, _, err := b1.CloseFrames(5 * time.Second); code != 1000 {
		t.Errorf("close_client of B's own client: close code %d (%v), want 1000", code, err)
	}
	n.waitOffline(t, B, b1.ID, 5*time.Second)
	a1.ExpectID(t, n.sendTo(t, A, a1.ID, `"marker-a2"`), "A's marker after B's client left B's group of the same name")
}

// forgeries derives ids that must all be "not online": one character flipped
// at every position (and every other value of the last character), cut,
// extended, re-cased, random ids of the right shape, and ids that look like
// paths, hosts and URLs.
func forgeries(id, foreign string) map[string]string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	out := map[string]string{}
	for i := 0; i < len(id); i++ {
		c := byte('A')
		if id[i] == 'A' {
			c = 'B'
		}
		out[id[:i]+string(c)+id[i+1:]] = "flip at " + strconv.Itoa(i)
	}
	last := len(id) - 1
	for i := 0; i < len(alphabet); i++ {
		if alphabet[i] != id[last] {
			out[id[:last]+alphabet[i:i+1]] = "last char " + alphabet[i:i+1]
		}
	}
	for _, k := range []int{1, len(id) / 2, len(id) - 1} {
		out[id[:k]] = "truncated to " + strconv.Itoa(k)
	}
	out[id+"A"] = "one char more"
	out[id+id] = "doubled"
	out["A"+id[1:]+"A"] = "shifted"
	out[swapCase(id)] = "case swapped"
	for i := 0; i < 20; i++ {
		b := make([]byte, 30)
		_, _ = rand.Read(b)
		out[base64.RawURLEncoding.EncodeToString(b)[:len(id)]] = "random"
	}
	for _, s := range []string{
		"../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "/etc/passwd", `..\..\windows\win.ini`,
		"127.0.0.1:7900", "localhost:22", "[::1]:7900", "0.0.0.0:80", "169.254.169.254",
		"http://169.254.169.254/latest/meta-data/", "//evil.example.com/x", "tcp://10.0.0.1:7900",
		"unix:///var/run/docker.sock", id + "/../" + foreign, "evil.example.com:443#" + id,
		id[:20] + "@127.0.0.1:7900", id + "?node=127.0.0.1:7900", id + "%00", id + "\x00", id + "\n",
		"' OR '1'='1", "<script>alert(1)</script>", "ｉｄ", strings.Repeat("A", 10000), " " + id, id + " ",
	} {
		out[s] = "hostile string"
	}
	delete(out, id)
	return out
}

func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 32
		case c >= 'A' && c <= 'Z':
			b[i] = c + 32
		}
	}
	return string(b)
}

// SPEC 2/4: a tampered or forged clientId is simply "not online" on every
// endpoint (10006/404; is_online false; send_to_clients lists it offline),
// never a 500, and it never reaches the genuine client.
func TestForgedClientIDs(t *testing.T) {
	t.Parallel()
	n := startNode(t, secureEnv())
	n.register(t, "fa", "fb")
	a := n.dial(t, "fa")
	b := n.dial(t, "fb")
	n.ok(t, "bind_to_group", "fa", map[string]string{"clientId": a.ID, "groupName": "g"})
	if ev := a.NextFrame(t, 5*time.Second); ev.Code != 1001 {
		t.Fatalf("want the own 1001 event, got code %d", ev.Code)
	}
	ids := forgeries(a.ID, b.ID)
	ids[b.ID] = "another system's genuine id"
	t.Logf("%d forged ids", len(ids))
	for id, kind := range ids {
		what := kind + " " + shorten(id)
		wantCode(t, n.post(t, "send_to_client", "fa", map[string]any{"clientId": id, "data": "forged"}), 10006, what+": send_to_client")
		wantCode(t, n.post(t, "bind_to_group", "fa", map[string]any{"clientId": id, "groupName": "g"}), 10006, what+": bind_to_group")
		wantCode(t, n.post(t, "unbind_from_group", "fa", map[string]any{"clientId": id, "groupName": "g"}), 10006, what+": unbind_from_group")
		wantCode(t, n.post(t, "close_client", "fa", map[string]any{"clientId": id}), 10006, what+": close_client")
		r := n.post(t, "is_online", "fa", map[string]any{"clientId": id})
		if r.Code != 0 || strings.TrimSpace(string(r.Data)) != `{"online":false}` {
			t.Errorf("%s: is_online: %s, want {\"online\":false}", what, r)
		}
		r = n.post(t, "send_to_clients", "fa", map[string]any{"clientIds": []string{id}, "data": "forged"})
		var many struct {
			Delivered *int     `json:"delivered"`
			Offline   []string `json:"offline"`
		}
		decode(t, r.Data, &many)
		if r.Code != 0 || many.Delivered == nil || *many.Delivered != 0 || len(many.Offline) != 1 || many.Offline[0] != id {
			t.Errorf("%s: send_to_clients: %s, want delivered 0 and the id offline", what, r)
		}
	}
	if !n.isOnline(t, "fa", a.ID) {
		t.Fatalf("the genuine client was closed by a forged id")
	}
	if got := n.onlineList(t, "fa", "g"); len(got) != 1 || got[0] != a.ID {
		t.Errorf("group g = %v, want the genuine client only", got)
	}
	a.ExpectID(t, n.sendTo(t, "fa", a.ID, `"marker"`), "marker after the forged calls (nothing forged may arrive)")
	if v := n.metric(t, "gows_api_requests_total", map[string]string{"code": "10011"}); v != 0 {
		t.Errorf("%v internal errors (10011) answered", v)
	}
	if log := n.Output(); strings.Contains(log, "internal error") || strings.Contains(log, "panic") {
		t.Errorf("the log mentions an internal error or a panic")
	}
}

func shorten(s string) string {
	if len(s) > 60 {
		return jsonStr(s[:60]) + "…"
	}
	return jsonStr(s)
}
