package servers

import (
	"testing"
	"time"
)

func TestParseUpstream(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{`{"upstream":{"text":"hi"}}`, `{"text":"hi"}`, true},
		{`{"upstream": [1, 2]}`, `[1, 2]`, true},
		{`{"upstream":null}`, `null`, true},
		{`{"upstream":"x","other":1}`, `"x"`, true},
		{`{"ack":"m1"}`, ``, false},
		{`{"upstream":`, ``, false},
		{`"upstream"`, ``, false},
		{`hello`, ``, false},
	} {
		got, ok := parseUpstream([]byte(c.in))
		if ok != c.ok || string(got) != c.want {
			t.Errorf("parseUpstream(%s) = %s %v, want %s %v", c.in, got, ok, c.want, c.ok)
		}
	}
	n := NewNode(Options{Secret: []byte("k"), Hub: HubConfig{PingInterval: time.Minute, PongWait: 2 * time.Minute, QueueLength: 8}})
	defer n.Shutdown(time.Now())
	if n.upstream(&Client{ID: "c", SystemID: "s"}, []byte(`{"upstream":1}`)) {
		t.Fatal("a node without webhooks handled an upstream message")
	}
}
