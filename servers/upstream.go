package servers

import (
	"bytes"
	"encoding/json"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/webhook"
)

// reasonUpstreamRate labels clients closed for sending upstream messages
// faster than allowed.
const reasonUpstreamRate = "upstream_rate"

// disconnectUpstreamRate closes a client that sends upstream messages
// faster than the configured rate.
var disconnectUpstreamRate = define.Disconnect{Code: define.ClosePolicyViolation,
	Text: "upstream rate limit exceeded", Reason: reasonUpstreamRate, Drop: true}

var upstreamKey = []byte(`"upstream"`)

// parseUpstream returns X of a text frame {"upstream": X}; ok is false for
// any other frame.
func parseUpstream(p []byte) (json.RawMessage, bool) {
	if !bytes.Contains(p, upstreamKey) {
		return nil, false
	}
	var m struct {
		Upstream json.RawMessage `json:"upstream"`
	}
	if err := json.Unmarshal(p, &m); err != nil || len(m.Upstream) == 0 {
		return nil, false
	}
	return m.Upstream, true
}

// upstream handles a client text frame that may be an upstream message: it
// becomes a message event when the system's webhook subscribes to it. A
// client over the upstream rate is closed with 1008. It reports whether p
// was an upstream message.
func (n *Node) upstream(c *Client, p []byte) bool {
	d := n.opts.Webhooks
	if d == nil {
		return false
	}
	data, ok := parseUpstream(p)
	if !ok {
		return false
	}
	if !d.AllowUpstream(c.ID) {
		c.close(disconnectUpstreamRate)
		return true
	}
	if !d.Wants(c.SystemID, webhook.EventMessage) {
		return true
	}
	d.Publish(webhook.Event{Type: webhook.EventMessage, SystemID: c.SystemID, ClientID: c.ID, UserID: c.UserID,
		Data: append(json.RawMessage(nil), data...)})
	return true
}
