package api

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers"
)

// UserService is what the user endpoints and acknowledgements need of the
// node.
type UserService interface {
	BindToUser(ctx context.Context, systemID, clientID, userID string) error
	SendToUser(ctx context.Context, systemID, userID string, m *define.Message, ack *servers.AckRequest) (*define.UserSendResult, error)
	UserClients(ctx context.Context, systemID, userID string) (*define.OnlineList, error)
	IsUserOnline(ctx context.Context, systemID, userID string) (bool, error)
	SendToClientAck(ctx context.Context, systemID, clientID string, m *define.Message, ack servers.AckRequest) (*define.AckedSend, error)
}

// Ack timeouts: the default and the most a caller may ask for.
const (
	defaultAckTimeout = 5 * time.Second
	maxAckTimeout     = 60 * time.Second
	maxUserIDLen      = 256
)

// ackFields are the acknowledgement fields of send_to_client and
// send_to_user.
type ackFields struct {
	Ack        bool   `json:"ack"`
	AckTimeout string `json:"ackTimeout"`
}

// request returns the ack request, nil when none was asked for.
func (a *ackFields) request() (*servers.AckRequest, error) {
	if !a.Ack {
		if a.AckTimeout != "" {
			return nil, fieldErr("ackTimeout", "needs \"ack\": true")
		}
		return nil, nil
	}
	d := defaultAckTimeout
	if a.AckTimeout != "" {
		v, err := time.ParseDuration(a.AckTimeout)
		if err != nil || v <= 0 || v > maxAckTimeout {
			return nil, fieldErr("ackTimeout", "must be a duration such as 5s or 500ms, above 0 and at most %s", maxAckTimeout)
		}
		d = v
	}
	return &servers.AckRequest{Timeout: d}, nil
}

// userName validates a userId: 1-256 characters, no control characters.
func userName(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if utf8.RuneCountInString(v) > maxUserIDLen || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return fieldErr(field, "must be 1-%d characters without control characters", maxUserIDLen)
	}
	return nil
}

// users returns the node's user service; endpoint names the caller in the
// error of a node without one.
func (h *Handlers) users(endpoint string) (UserService, error) {
	us, ok := h.svc.(UserService)
	if !ok {
		return nil, define.Errorf(define.CodeInvalidRequest, "%s is not supported by this node (no users)", endpoint)
	}
	return us, nil
}

// sendToClientAck runs a send_to_client that asks for an ack.
func (h *Handlers) sendToClientAck(ctx context.Context, sys string, req *sendReq, ack *servers.AckRequest) (any, error) {
	us, err := h.users("send_to_client with ack")
	if err != nil {
		return nil, err
	}
	return us.SendToClientAck(ctx, sys, req.ClientID, &req.Message, *ack)
}

type bindUserReq struct {
	ClientID string `json:"clientId"`
	UserID   string `json:"userId"`
}

func (h *Handlers) bindToUser(ctx context.Context, sys string, body []byte) (any, error) {
	var req bindUserReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := firstErr(required("clientId", req.ClientID), userName("userId", req.UserID)); err != nil {
		return nil, err
	}
	us, err := h.users("bind_to_user")
	if err != nil {
		return nil, err
	}
	if err := us.BindToUser(ctx, sys, req.ClientID, req.UserID); err != nil {
		return nil, err
	}
	return gin.H{}, nil
}

type sendUserReq struct {
	UserID string `json:"userId"`
	define.Message
	ackFields
}

func (h *Handlers) sendToUser(ctx context.Context, sys string, body []byte) (any, error) {
	var req sendUserReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	if err := firstErr(userName("userId", req.UserID), message(&req.Message)); err != nil {
		return nil, err
	}
	ack, err := req.request()
	if err != nil {
		return nil, err
	}
	us, err := h.users("send_to_user")
	if err != nil {
		return nil, err
	}
	return us.SendToUser(ctx, sys, req.UserID, &req.Message, ack)
}

type userReq struct {
	UserID string `json:"userId"`
}

func (h *Handlers) userQuery(body []byte) (UserService, string, error) {
	var req userReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, "", err
	}
	if err := userName("userId", req.UserID); err != nil {
		return nil, "", err
	}
	us, err := h.users("user lookups")
	return us, req.UserID, err
}

func (h *Handlers) getUserClients(ctx context.Context, sys string, body []byte) (any, error) {
	us, uid, err := h.userQuery(body)
	if err != nil {
		return nil, err
	}
	return us.UserClients(ctx, sys, uid)
}

func (h *Handlers) isUserOnline(ctx context.Context, sys string, body []byte) (any, error) {
	us, uid, err := h.userQuery(body)
	if err != nil {
		return nil, err
	}
	online, err := us.IsUserOnline(ctx, sys, uid)
	if err != nil {
		return nil, err
	}
	return gin.H{"online": online}, nil
}
