// Package webhook posts a system's events (connects, disconnects, joins,
// leaves, upstream messages) to its backend: a queue per system, batches of
// at most MaxBatch events or Linger, HMAC-signed, retried with exponential
// backoff and jitter, at least once and in order per client.
package webhook

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Event types.
const (
	EventConnect    = "connect"
	EventDisconnect = "disconnect"
	EventJoin       = "join"
	EventLeave      = "leave"
	EventMessage    = "message"
)

// Events lists every event type a system can subscribe to.
var Events = []string{EventConnect, EventDisconnect, EventJoin, EventLeave, EventMessage}

// Disconnect reasons carried by disconnect events.
const (
	ReasonClientClose    = "client_close"
	ReasonHeartbeat      = "heartbeat"
	ReasonSlowConsumer   = "slow_consumer"
	ReasonCloseClient    = "close_client"
	ReasonShutdown       = "shutdown"
	ReasonSessionExpired = "session_expired"
	ReasonNodeLost       = "node_lost"
	// ReasonMoved: the client's session resumed on another node under a
	// new clientId, whose connect (and joins) that node posts.
	ReasonMoved = "moved"
)

// Event is one posted event. Fields that do not apply are empty and left
// out of the JSON, except the ones every event has.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Time      int64           `json:"time"` // unix milliseconds
	SystemID  string          `json:"systemId"`
	ClientID  string          `json:"clientId"`
	UserID    string          `json:"userId,omitempty"`
	GroupName string          `json:"groupName,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// Payload is the body of one POST.
type Payload struct {
	Events []Event `json:"events"`
}

// Info is what update_system and get_system answer.
type Info struct {
	SystemID      string   `json:"systemId"`
	WebhookURL    string   `json:"webhookUrl"`
	WebhookEvents []string `json:"webhookEvents"`
	// WebhookSecret is shown only when it was just minted.
	WebhookSecret string `json:"webhookSecret,omitempty"`
}

// Update is the body of update_system: nil fields stay as they are.
type Update struct {
	WebhookURL    *string   `json:"webhookUrl"`
	WebhookEvents *[]string `json:"webhookEvents"`
	RotateSecret  bool      `json:"rotateSecret"`
}

// CheckEvents returns an error naming the first unknown event type.
func CheckEvents(events []string) error {
	for _, e := range events {
		if !slices.Contains(Events, e) {
			return fmt.Errorf("unknown event %q (known: %s)", e, strings.Join(Events, ", "))
		}
	}
	return nil
}

// CheckURL accepts an absolute http or https URL ("" clears the webhook)
// whose host is in allowHosts (empty: any host).
func CheckURL(raw string, allowHosts []string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("must be an http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("has no host")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials")
	}
	if len(allowHosts) > 0 && !hostAllowed(u.Hostname(), allowHosts) {
		return fmt.Errorf("host %q is not in the allowed webhook hosts", u.Hostname())
	}
	return nil
}

// hostAllowed matches host against names ("example.com") and suffixes
// (".example.com" matches every subdomain).
func hostAllowed(host string, allow []string) bool {
	host = strings.ToLower(host)
	for _, a := range allow {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == "*" || a == host:
			return true
		case strings.HasPrefix(a, ".") && strings.HasSuffix(host, a):
			return true
		}
	}
	return false
}
