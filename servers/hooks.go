package servers

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/store"
	"github.com/go-websocket/go-websocket/servers/webhook"
	"github.com/go-websocket/go-websocket/tools/ident"
)

// hookKind is what happened to a client, for its system's webhook.
type hookKind uint8

const (
	hookConnect hookKind = iota + 1
	hookDisconnect
	hookJoin
	hookLeave
)

// webhookReasons maps the disconnect labels to the reasons a disconnect
// event carries. A node declared gone by its cluster says nothing of its
// clients: a surviving node announced them.
var webhookReasons = map[string]string{
	define.ReasonNormal:        webhook.ReasonClientClose,
	define.ReasonTooBig:        webhook.ReasonClientClose,
	define.ReasonProtocolError: webhook.ReasonClientClose,
	define.ReasonWriteError:    webhook.ReasonClientClose,
	define.ReasonHeartbeat:     webhook.ReasonHeartbeat,
	define.ReasonSlowConsumer:  webhook.ReasonSlowConsumer,
	define.ReasonWriteTimeout:  webhook.ReasonSlowConsumer,
	define.ReasonKicked:        webhook.ReasonCloseClient,
	define.ReasonShutdown:      webhook.ReasonShutdown,
	define.ReasonSessionExpire: webhook.ReasonSessionExpired,
	// A session resumed on another node: the old clientId leaves and
	// disconnects here, the new one connects and joins there.
	define.ReasonMoved: webhook.ReasonMoved,
	reasonUpstreamRate: webhook.ReasonClientClose,
}

// webhook implements hubNode: it queues the event for the system's webhook.
func (n *Node) webhook(kind hookKind, c *Client, group string, m *member, reason string) {
	d := n.opts.Webhooks
	if d == nil {
		return
	}
	if kind == hookDisconnect {
		d.Forget(c.ID)
	}
	ev := webhook.Event{SystemID: c.SystemID, ClientID: c.ID, UserID: c.userID()}
	if reason != "" {
		r, ok := webhookReasons[reason]
		if !ok {
			return // node_lost
		}
		ev.Reason = r
	}
	switch kind {
	case hookConnect:
		ev.Type = webhook.EventConnect
	case hookDisconnect:
		ev.Type = webhook.EventDisconnect
	case hookJoin, hookLeave:
		ev.Type, ev.GroupName = webhook.EventJoin, group
		if kind == hookLeave {
			ev.Type = webhook.EventLeave
		}
		if m != nil && m.userID != "" {
			ev.UserID = m.userID
		}
	}
	d.Publish(ev)
}

// mintSecret returns a new webhook secret: 32 random bytes, hex.
func mintSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "whsec_" + hex.EncodeToString(b[:])
}

func (n *Node) allowHosts() []string {
	if d := n.opts.Webhooks; d != nil {
		return d.Config().AllowHosts
	}
	return nil
}

func (n *Node) checkWebhookURL(url string) error {
	if err := webhook.CheckURL(url, n.allowHosts()); err != nil {
		return define.Errorf(define.CodeInvalidRequest, "field webhookUrl %v", err)
	}
	return nil
}

// RegisterSystem adds a system with its webhook settings and returns the
// webhook secret minted for it (shown once): only when a webhook URL is
// given, so a plain register answers as it always did. update_system mints
// one when a URL is set later.
func (n *Node) RegisterSystem(ctx context.Context, systemID, url string, events []string) (string, error) {
	if err := n.checkWebhookURL(url); err != nil {
		return "", err
	}
	secret := ""
	if url != "" {
		secret = mintSecret()
	}
	err := n.systems.RegisterWith(ctx, systemID, store.Settings{WebhookURL: url, WebhookEvents: slices.Clone(events), WebhookSecret: secret})
	if err != nil {
		return "", err
	}
	n.refreshWebhook(systemID)
	return secret, nil
}

// UpdateSystem changes the webhook fields given; the answer carries the
// secret only when one was minted (rotateSecret, or a webhook set on a
// system that had no secret).
func (n *Node) UpdateSystem(ctx context.Context, systemID string, u *webhook.Update) (*webhook.Info, error) {
	if u.WebhookURL != nil {
		if err := n.checkWebhookURL(*u.WebhookURL); err != nil {
			return nil, err
		}
	}
	minted := ""
	set, err := n.systems.UpdateSettings(ctx, systemID, func(s *store.Settings) error {
		minted = ""
		if u.WebhookURL != nil {
			s.WebhookURL = *u.WebhookURL
		}
		if u.WebhookEvents != nil {
			s.WebhookEvents = slices.Clone(*u.WebhookEvents)
		}
		if u.RotateSecret || (s.WebhookSecret == "" && s.WebhookURL != "") {
			minted = mintSecret()
			s.WebhookSecret = minted
		}
		return nil
	})
	if err != nil {
		return nil, storeErr(err)
	}
	n.refreshWebhook(systemID)
	info := infoOf(systemID, set)
	info.WebhookSecret = minted
	return info, nil
}

// GetSystem shows a system's settings without the secret.
func (n *Node) GetSystem(ctx context.Context, systemID string) (*webhook.Info, error) {
	set, ok, err := n.systems.Settings(ctx, systemID)
	if err != nil {
		return nil, storeErr(err)
	}
	if !ok {
		return nil, define.ErrUnknownSystem
	}
	return infoOf(systemID, set), nil
}

func infoOf(systemID string, s store.Settings) *webhook.Info {
	ev := s.WebhookEvents
	if ev == nil {
		ev = []string{}
	}
	return &webhook.Info{SystemID: systemID, WebhookURL: s.WebhookURL, WebhookEvents: ev}
}

// storeErr passes API errors on; anything else means the store could not
// be reached.
func storeErr(err error) error {
	var e *define.Error
	if errors.As(err, &e) {
		return err
	}
	return &define.Error{Code: define.CodeUnavailable, Msg: "cluster unavailable: the system's settings cannot be read now; try again later"}
}

func (n *Node) refreshWebhook(systemID string) {
	if d := n.opts.Webhooks; d != nil {
		d.Refresh(systemID)
	}
}

// lostClaimer is a Remote that can tell which survivor announces a lost
// node's clients to the webhooks.
type lostClaimer interface {
	ClaimLost(ctx context.Context, node ident.NodeID) bool
}

// webhookLost posts, from exactly one surviving node, the leave and
// disconnect (node_lost) events of the clients of a node the cluster
// declared gone. lost holds the clients of one node.
func (n *Node) webhookLost(lost []LostClient) {
	d := n.opts.Webhooks
	if d == nil || len(lost) == 0 {
		return
	}
	cl, ok := n.getRemote().(lostClaimer)
	if !ok {
		return
	}
	node, _, ok := n.route(lost[0].SystemID, lost[0].ClientID)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !cl.ClaimLost(ctx, node) {
		return
	}
	for i := range lost {
		l := &lost[i]
		for g, m := range l.Groups {
			d.Publish(webhook.Event{Type: webhook.EventLeave, SystemID: l.SystemID, ClientID: l.ClientID,
				UserID: cmp.Or(m.UserID, l.UserID), GroupName: g, Reason: webhook.ReasonNodeLost})
		}
		d.Publish(webhook.Event{Type: webhook.EventDisconnect, SystemID: l.SystemID, ClientID: l.ClientID,
			UserID: l.UserID, Reason: webhook.ReasonNodeLost})
	}
}
