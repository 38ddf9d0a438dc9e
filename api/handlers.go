package api

import (
	"bytes"
	"context"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/webhook"
)

// Service is what the handlers need of the node.
type Service interface {
	// RegisterSystem adds a system with its webhook settings and returns
	// the webhook secret it minted for it.
	RegisterSystem(ctx context.Context, systemID, webhookURL string, webhookEvents []string) (secret string, err error)
	UpdateSystem(ctx context.Context, systemID string, u *webhook.Update) (*webhook.Info, error)
	GetSystem(ctx context.Context, systemID string) (*webhook.Info, error)
	SendToClient(ctx context.Context, systemID, clientID string, m *define.Message) (string, error)
	SendToClients(ctx context.Context, systemID string, ids []string, m *define.Message) (*define.SendResult, error)
	BindToGroup(ctx context.Context, systemID, clientID, group, userID, extend string) error
	UnbindFromGroup(ctx context.Context, systemID, clientID, group string) error
	SendToGroup(ctx context.Context, systemID, group string, m *define.Message) (*define.BroadcastResult, error)
	SendToSystem(ctx context.Context, systemID string, m *define.Message) (*define.BroadcastResult, error)
	OnlineList(ctx context.Context, systemID, group string) (*define.OnlineList, error)
	IsOnline(ctx context.Context, systemID, clientID string) (bool, error)
	CloseClient(ctx context.Context, systemID, clientID string) error
	// Cork returns a context under which sends are queued and written
	// together when flush is called (batch).
	Cork(ctx context.Context) (corked context.Context, flush func())
}

// Handlers serves the HTTP API.
type Handlers struct {
	svc Service
	log *zap.Logger
	ops map[string]op
}

// op runs one endpoint on a request body: decode, validate, call the node.
// It returns the success data or an error. The HTTP handlers and the batch
// endpoint share it.
type op func(ctx context.Context, systemID string, body []byte) (any, error)

// New returns the handlers for svc.
func New(svc Service, log *zap.Logger) *Handlers {
	h := &Handlers{svc: svc, log: log}
	h.ops = map[string]op{
		"send_to_client":    h.sendToClient,
		"send_to_clients":   h.sendToClients,
		"bind_to_group":     h.bindToGroup,
		"unbind_from_group": h.unbindFromGroup,
		"send_to_group":     h.sendToGroup,
		"send_to_system":    h.sendToSystem,
		"close_client":      h.closeClient,
		"send_to_user":      h.sendToUser,
		"bind_to_user":      h.bindToUser,
	}
	return h
}

// Endpoint is one API endpoint: its name (the last path segment) and handler.
type Endpoint struct {
	Name    string
	Handler gin.HandlerFunc
	// NeedsSystem: the systemId header is required and must be registered.
	NeedsSystem bool
}

// Endpoints lists every POST endpoint.
func (h *Handlers) Endpoints() []Endpoint {
	return []Endpoint{
		{"register", h.serve(h.register, false), false},
		{"update_system", h.serve(h.updateSystem, false), true},
		{"get_system", h.serve(h.getSystem, true), true},
		{"send_to_client", h.serve(h.sendToClient, false), true},
		{"send_to_clients", h.serve(h.sendToClients, false), true},
		{"bind_to_group", h.serve(h.bindToGroup, false), true},
		{"unbind_from_group", h.serve(h.unbindFromGroup, false), true},
		{"send_to_group", h.serve(h.sendToGroup, false), true},
		{"send_to_system", h.serve(h.sendToSystem, true), true},
		{"get_online_list", h.serve(h.getOnlineList, true), true},
		{"is_online", h.serve(h.isOnline, false), true},
		{"close_client", h.serve(h.closeClient, false), true},
		{"batch", h.serve(h.batch, false), true},
		{"bind_to_user", h.serve(h.bindToUser, false), true},
		{"send_to_user", h.serve(h.sendToUser, false), true},
		{"get_user_clients", h.serve(h.getUserClients, false), true},
		{"is_user_online", h.serve(h.isUserOnline, false), true},
	}
}

// serve adapts an op to gin: it reads the body (allowEmpty: an empty body
// counts as {}) and renders the envelope.
func (h *Handlers) serve(run op, allowEmpty bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := readBody(c.Request)
		if err == nil && allowEmpty && len(bytes.TrimSpace(body)) == 0 {
			body = []byte("{}")
		}
		if err != nil {
			h.fail(c, err)
			return
		}
		// The request's context, not gin's: gin reuses its Context once the
		// handler returned, and a deadline timer of the node may outlive
		// the call. It carries the request id for errors an op logs.
		ctx := context.WithValue(c.Request.Context(), requestIDKey{}, c.GetString(KeyRequestID))
		data, err := run(ctx, systemID(c), body)
		if err != nil {
			h.fail(c, err)
			return
		}
		OK(c, data)
	}
}

func systemID(c *gin.Context) string { return c.GetString(KeySystemID) }

func (h *Handlers) fail(c *gin.Context, err error) { Fail(c, h.log, err) }

type registerReq struct {
	SystemID      string   `json:"systemId"`
	WebhookURL    string   `json:"webhookUrl"`
	WebhookEvents []string `json:"webhookEvents"`
}

func (h *Handlers) register(ctx context.Context, _ string, body []byte) (any, error) {
	var req registerReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if req.SystemID == "" {
		return nil, define.Errorf(define.CodeMissingSystemID, "field systemId is required")
	}
	if err := firstErr(name("systemId", req.SystemID), webhookFields(&req.WebhookURL, &req.WebhookEvents)); err != nil {
		return nil, err
	}
	secret, err := h.svc.RegisterSystem(ctx, req.SystemID, req.WebhookURL, req.WebhookEvents)
	if err != nil {
		return nil, err
	}
	if secret == "" {
		return gin.H{"systemId": req.SystemID}, nil
	}
	return gin.H{"systemId": req.SystemID, "webhookSecret": secret}, nil
}

// webhookFields validates the webhook settings of register and
// update_system (nil: not given).
func webhookFields(url *string, events *[]string) error {
	if url != nil {
		if err := webhook.CheckURL(*url, nil); err != nil {
			return fieldErr("webhookUrl", "%v", err)
		}
	}
	if events != nil {
		if err := webhook.CheckEvents(*events); err != nil {
			return fieldErr("webhookEvents", "has an %v", err)
		}
	}
	return nil
}

func (h *Handlers) updateSystem(ctx context.Context, sys string, body []byte) (any, error) {
	var req webhook.Update
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := webhookFields(req.WebhookURL, req.WebhookEvents); err != nil {
		return nil, err
	}
	return h.svc.UpdateSystem(ctx, sys, &req)
}

func (h *Handlers) getSystem(ctx context.Context, sys string, body []byte) (any, error) {
	var req struct{}
	if err := decodeBytes(body, &req, true); err != nil {
		return nil, err
	}
	return h.svc.GetSystem(ctx, sys)
}

type sendReq struct {
	ClientID string `json:"clientId"`
	define.Message
	ackFields
}

func (h *Handlers) sendToClient(ctx context.Context, sys string, body []byte) (any, error) {
	var req sendReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	return h.sendToClientReq(ctx, sys, &req)
}

// sendToClientReq validates a decoded send_to_client and runs it.
func (h *Handlers) sendToClientReq(ctx context.Context, sys string, req *sendReq) (any, error) {
	if err := firstErr(required("clientId", req.ClientID), message(&req.Message)); err != nil {
		return nil, err
	}
	ack, err := req.request()
	if err != nil {
		return nil, err
	}
	if ack != nil {
		return h.sendToClientAck(ctx, sys, req, ack)
	}
	id, err := h.svc.SendToClient(ctx, sys, req.ClientID, &req.Message)
	if err != nil {
		return nil, err
	}
	return messageID{id}, nil
}

// messageID answers send_to_client (a struct encodes faster than a map).
type messageID struct {
	MessageID string `json:"messageId"`
}

type sendManyReq struct {
	ClientIDs []string `json:"clientIds"`
	define.Message
}

func (h *Handlers) sendToClients(ctx context.Context, sys string, body []byte) (any, error) {
	var req sendManyReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if len(req.ClientIDs) == 0 {
		return nil, fieldErr("clientIds", "is required (a non-empty array of clientIds)")
	}
	if len(req.ClientIDs) > define.MaxClientIDsCall {
		return nil, fieldErr("clientIds", "has %d entries; at most %d per call", len(req.ClientIDs), define.MaxClientIDsCall)
	}
	for i, id := range req.ClientIDs {
		if id == "" {
			return nil, fieldErr("clientIds", "entry %d is empty", i)
		}
	}
	if err := message(&req.Message); err != nil {
		return nil, err
	}
	return h.svc.SendToClients(ctx, sys, req.ClientIDs, &req.Message)
}

type bindReq struct {
	ClientID   string `json:"clientId"`
	GroupName  string `json:"groupName"`
	SendUserID string `json:"sendUserId"`
	UserID     string `json:"userId"`
	Extend     string `json:"extend"`
}

// empty is the data of endpoints that answer nothing.
var empty = struct{}{}

func (h *Handlers) bindToGroup(ctx context.Context, sys string, body []byte) (any, error) {
	var req bindReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := firstErr(required("clientId", req.ClientID), name("groupName", req.GroupName)); err != nil {
		return nil, err
	}
	if err := h.svc.BindToGroup(ctx, sys, req.ClientID, req.GroupName, req.UserID, req.Extend); err != nil {
		return nil, err
	}
	return empty, nil
}

type unbindReq struct {
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
}

func (h *Handlers) unbindFromGroup(ctx context.Context, sys string, body []byte) (any, error) {
	var req unbindReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := firstErr(required("clientId", req.ClientID), name("groupName", req.GroupName)); err != nil {
		return nil, err
	}
	if err := h.svc.UnbindFromGroup(ctx, sys, req.ClientID, req.GroupName); err != nil {
		return nil, err
	}
	return empty, nil
}

type groupSendReq struct {
	GroupName string `json:"groupName"`
	define.Message
}

func (h *Handlers) sendToGroup(ctx context.Context, sys string, body []byte) (any, error) {
	var req groupSendReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := firstErr(name("groupName", req.GroupName), message(&req.Message)); err != nil {
		return nil, err
	}
	return h.svc.SendToGroup(ctx, sys, req.GroupName, &req.Message)
}

func (h *Handlers) sendToSystem(ctx context.Context, sys string, body []byte) (any, error) {
	var req define.Message
	if err := decodeBytes(body, &req, true); err != nil {
		return nil, err
	}
	if err := message(&req); err != nil {
		return nil, err
	}
	return h.svc.SendToSystem(ctx, sys, &req)
}

type listReq struct {
	GroupName string `json:"groupName"`
}

func (h *Handlers) getOnlineList(ctx context.Context, sys string, body []byte) (any, error) {
	var req listReq
	if err := decodeBytes(body, &req, true); err != nil {
		return nil, err
	}
	if req.GroupName != "" {
		if err := name("groupName", req.GroupName); err != nil {
			return nil, err
		}
	}
	return h.svc.OnlineList(ctx, sys, req.GroupName)
}

type clientReq struct {
	ClientID string `json:"clientId"`
}

func (h *Handlers) isOnline(ctx context.Context, sys string, body []byte) (any, error) {
	var req clientReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := required("clientId", req.ClientID); err != nil {
		return nil, err
	}
	online, err := h.svc.IsOnline(ctx, sys, req.ClientID)
	if err != nil {
		return nil, err
	}
	return gin.H{"online": online}, nil
}

func (h *Handlers) closeClient(ctx context.Context, sys string, body []byte) (any, error) {
	var req clientReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := required("clientId", req.ClientID); err != nil {
		return nil, err
	}
	if err := h.svc.CloseClient(ctx, sys, req.ClientID); err != nil {
		return nil, err
	}
	return empty, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
