package api

import (
	"context"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
)

// Service is what the handlers need of the node.
type Service interface {
	Register(ctx context.Context, systemID string) error
	SendToClient(ctx context.Context, systemID, clientID string, m *define.Message) (string, error)
	SendToClients(ctx context.Context, systemID string, ids []string, m *define.Message) (*define.SendResult, error)
	BindToGroup(ctx context.Context, systemID, clientID, group, userID, extend string) error
	UnbindFromGroup(ctx context.Context, systemID, clientID, group string) error
	SendToGroup(ctx context.Context, systemID, group string, m *define.Message) (*define.BroadcastResult, error)
	SendToSystem(ctx context.Context, systemID string, m *define.Message) (*define.BroadcastResult, error)
	OnlineList(ctx context.Context, systemID, group string) (*define.OnlineList, error)
	IsOnline(ctx context.Context, systemID, clientID string) (bool, error)
	CloseClient(ctx context.Context, systemID, clientID string) error
}

// Handlers serves the HTTP API of SPEC section 2.
type Handlers struct {
	svc Service
	log *zap.Logger
}

// New returns the handlers for svc.
func New(svc Service, log *zap.Logger) *Handlers { return &Handlers{svc: svc, log: log} }

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
		{"register", h.register, false},
		{"send_to_client", h.sendToClient, true},
		{"send_to_clients", h.sendToClients, true},
		{"bind_to_group", h.bindToGroup, true},
		{"unbind_from_group", h.unbindFromGroup, true},
		{"send_to_group", h.sendToGroup, true},
		{"send_to_system", h.sendToSystem, true},
		{"get_online_list", h.getOnlineList, true},
		{"is_online", h.isOnline, true},
		{"close_client", h.closeClient, true},
	}
}

func systemID(c *gin.Context) string { return c.GetString(KeySystemID) }

func (h *Handlers) fail(c *gin.Context, err error) { Fail(c, h.log, err) }

type registerReq struct {
	SystemID string `json:"systemId"`
}

func (h *Handlers) register(c *gin.Context) {
	var req registerReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if req.SystemID == "" {
		h.fail(c, define.Errorf(define.CodeMissingSystemID, "field systemId is required"))
		return
	}
	if err := name("systemId", req.SystemID); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.Register(c.Request.Context(), req.SystemID); err != nil {
		h.fail(c, err)
		return
	}
	OK(c, gin.H{"systemId": req.SystemID})
}

type sendReq struct {
	ClientID string `json:"clientId"`
	define.Message
}

func (h *Handlers) sendToClient(c *gin.Context) {
	var req sendReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if err := firstErr(required("clientId", req.ClientID), message(&req.Message)); err != nil {
		h.fail(c, err)
		return
	}
	id, err := h.svc.SendToClient(c.Request.Context(), systemID(c), req.ClientID, &req.Message)
	if err != nil {
		h.fail(c, err)
		return
	}
	OK(c, gin.H{"messageId": id})
}

type sendManyReq struct {
	ClientIDs []string `json:"clientIds"`
	define.Message
}

func (h *Handlers) sendToClients(c *gin.Context) {
	var req sendManyReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if len(req.ClientIDs) == 0 {
		h.fail(c, fieldErr("clientIds", "is required (a non-empty array of clientIds)"))
		return
	}
	if len(req.ClientIDs) > define.MaxClientIDsCall {
		h.fail(c, fieldErr("clientIds", "has %d entries; at most %d per call", len(req.ClientIDs), define.MaxClientIDsCall))
		return
	}
	for i, id := range req.ClientIDs {
		if id == "" {
			h.fail(c, fieldErr("clientIds", "entry %d is empty", i))
			return
		}
	}
	if err := message(&req.Message); err != nil {
		h.fail(c, err)
		return
	}
	res, err := h.svc.SendToClients(c.Request.Context(), systemID(c), req.ClientIDs, &req.Message)
	if err != nil {
		h.fail(c, err)
		return
	}
	OK(c, res)
}

type bindReq struct {
	ClientID   string `json:"clientId"`
	GroupName  string `json:"groupName"`
	SendUserID string `json:"sendUserId"`
	UserID     string `json:"userId"`
	Extend     string `json:"extend"`
}

func (h *Handlers) bindToGroup(c *gin.Context) {
	var req bindReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if err := firstErr(required("clientId", req.ClientID), name("groupName", req.GroupName)); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.BindToGroup(c.Request.Context(), systemID(c), req.ClientID, req.GroupName, req.UserID, req.Extend); err != nil {
		h.fail(c, err)
		return
	}
	OK(c, gin.H{})
}

type unbindReq struct {
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
}

func (h *Handlers) unbindFromGroup(c *gin.Context) {
	var req unbindReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if err := firstErr(required("clientId", req.ClientID), name("groupName", req.GroupName)); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.UnbindFromGroup(c.Request.Context(), systemID(c), req.ClientID, req.GroupName); err != nil {
		h.fail(c, err)
		return
	}
	OK(c, gin.H{})
}

type groupSendReq struct {
	GroupName string `json:"groupName"`
	define.Message
}

func (h *Handlers) sendToGroup(c *gin.Context) {
	var req groupSendReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if err := firstErr(name("groupName", req.GroupName), message(&req.Message)); err != nil {
		h.fail(c, err)
		return
	}
	res, err := h.svc.SendToGroup(c.Request.Context(), systemID(c), req.GroupName, &req.Message)
	if err != nil {
		h.fail(c, err)
		return
	}
	OK(c, res)
}

func (h *Handlers) sendToSystem(c *gin.Context) {
	var req define.Message
	if err := decode(c.Request, &req, true); err != nil {
		h.fail(c, err)
		return
	}
	if err := message(&req); err != nil {
		h.fail(c, err)
		return
	}
	res, err := h.svc.SendToSystem(c.Request.Context(), systemID(c), &req)
	if err != nil {
		h.fail(c, err)
		return
	}
	OK(c, res)
}

type listReq struct {
	GroupName string `json:"groupName"`
}

func (h *Handlers) getOnlineList(c *gin.Context) {
	var req listReq
	if err := decode(c.Request, &req, true); err != nil {
		h.fail(c, err)
		return
	}
	if req.GroupName != "" {
		if err := name("groupName", req.GroupName); err != nil {
			h.fail(c, err)
			return
		}
	}
	res, err := h.svc.OnlineList(c.Request.Context(), systemID(c), req.GroupName)
	if err != nil {
		h.fail(c, err)
		return
	}
	OK(c, res)
}

type clientReq struct {
	ClientID string `json:"clientId"`
}

func (h *Handlers) isOnline(c *gin.Context) {
	var req clientReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if err := required("clientId", req.ClientID); err != nil {
		h.fail(c, err)
		return
	}
	online, err := h.svc.IsOnline(c.Request.Context(), systemID(c), req.ClientID)
	if err != nil {
		h.fail(c, err)
		return
	}
	OK(c, gin.H{"online": online})
}

func (h *Handlers) closeClient(c *gin.Context) {
	var req clientReq
	if err := decode(c.Request, &req, false); err != nil {
		h.fail(c, err)
		return
	}
	if err := required("clientId", req.ClientID); err != nil {
		h.fail(c, err)
		return
	}
	if err := h.svc.CloseClient(c.Request.Context(), systemID(c), req.ClientID); err != nil {
		h.fail(c, err)
		return
	}
	OK(c, gin.H{})
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
