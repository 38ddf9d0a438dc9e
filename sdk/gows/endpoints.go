package gows

import (
	"context"
	"time"
)

// Message is what a send pushes; Data is any JSON-encodable value and
// reaches the client as is.
type Message struct {
	SendUserID string `json:"sendUserId,omitempty"`
	Code       int    `json:"code,omitempty"`
	Msg        string `json:"msg,omitempty"`
	Data       any    `json:"data,omitempty"`
}

// Webhook event types.
const (
	EventConnect    = "connect"
	EventDisconnect = "disconnect"
	EventJoin       = "join"
	EventLeave      = "leave"
	EventMessage    = "message"
)

// RegisterOptions are the optional webhook settings of Register.
type RegisterOptions struct {
	WebhookURL    string
	WebhookEvents []string
}

// Registered answers Register.
type Registered struct {
	SystemID string `json:"systemId"`
	// WebhookSecret signs the system's webhooks; it is shown only once.
	WebhookSecret string `json:"webhookSecret"`
}

// Register registers the client's system.
func (c *Client) Register(ctx context.Context, o *RegisterOptions) (*Registered, error) {
	body := map[string]any{"systemId": c.systemID}
	if o != nil {
		if o.WebhookURL != "" {
			body["webhookUrl"] = o.WebhookURL
		}
		if o.WebhookEvents != nil {
			body["webhookEvents"] = o.WebhookEvents
		}
	}
	var out Registered
	return &out, c.Call(ctx, "register", body, &out)
}

// SystemInfo answers UpdateSystem and GetSystem.
type SystemInfo struct {
	SystemID      string   `json:"systemId"`
	WebhookURL    string   `json:"webhookUrl"`
	WebhookEvents []string `json:"webhookEvents"`
	// WebhookSecret is set only when UpdateSystem minted one.
	WebhookSecret string `json:"webhookSecret,omitempty"`
}

// SystemUpdate lists the settings to change; nil fields stay as they are.
type SystemUpdate struct {
	WebhookURL    *string   `json:"webhookUrl,omitempty"`
	WebhookEvents *[]string `json:"webhookEvents,omitempty"`
	RotateSecret  bool      `json:"rotateSecret,omitempty"`
}

// UpdateSystem changes the system's webhook settings.
func (c *Client) UpdateSystem(ctx context.Context, u SystemUpdate) (*SystemInfo, error) {
	var out SystemInfo
	return &out, c.Call(ctx, "update_system", u, &out)
}

// GetSystem shows the system's webhook settings (without the secret).
func (c *Client) GetSystem(ctx context.Context) (*SystemInfo, error) {
	var out SystemInfo
	return &out, c.Call(ctx, "get_system", struct{}{}, &out)
}

type sendToClient struct {
	ClientID string `json:"clientId"`
	Message
	Ack        bool   `json:"ack,omitempty"`
	AckTimeout string `json:"ackTimeout,omitempty"`
}

type messageID struct {
	MessageID string `json:"messageId"`
}

// SendToClient pushes m to one client and returns its messageId.
func (c *Client) SendToClient(ctx context.Context, clientID string, m Message) (string, error) {
	var out messageID
	return out.MessageID, c.Call(ctx, "send_to_client", sendToClient{ClientID: clientID, Message: m}, &out)
}

// Acked answers the sends that asked for an ack.
type Acked struct {
	MessageID  string `json:"messageId"`
	Recipients int    `json:"recipients"`
	Acked      bool   `json:"acked"`
}

// SendToClientAck pushes m asking the client for an ack and returns when
// the ack arrived or timeout (at most 60 s; 0: the server's 5 s) passed.
func (c *Client) SendToClientAck(ctx context.Context, clientID string, m Message, timeout time.Duration) (*Acked, error) {
	req := sendToClient{ClientID: clientID, Message: m, Ack: true}
	if timeout > 0 {
		req.AckTimeout = timeout.String()
	}
	var out Acked
	return &out, c.Call(ctx, "send_to_client", req, &out)
}

// SendResult answers SendToClients.
type SendResult struct {
	MessageID string   `json:"messageId"`
	Delivered int      `json:"delivered"`
	Offline   []string `json:"offline"`
}

// SendToClients pushes m to several clients (at most 10,000).
func (c *Client) SendToClients(ctx context.Context, clientIDs []string, m Message) (*SendResult, error) {
	var out SendResult
	return &out, c.Call(ctx, "send_to_clients", struct {
		ClientIDs []string `json:"clientIds"`
		Message
	}{clientIDs, m}, &out)
}

// Broadcast answers SendToGroup, SendToSystem and SendToUser.
type Broadcast struct {
	MessageID  string `json:"messageId"`
	Recipients int    `json:"recipients"`
	// Acked is set by SendToUserAck.
	Acked *bool `json:"acked,omitempty"`
	// Unreachable lists cluster nodes that did not answer in time.
	Unreachable []string `json:"unreachable,omitempty"`
}

// SendToGroup pushes m to every member of group.
func (c *Client) SendToGroup(ctx context.Context, group string, m Message) (*Broadcast, error) {
	var out Broadcast
	return &out, c.Call(ctx, "send_to_group", struct {
		GroupName string `json:"groupName"`
		Message
	}{group, m}, &out)
}

// SendToSystem pushes m to every client of the system.
func (c *Client) SendToSystem(ctx context.Context, m Message) (*Broadcast, error) {
	var out Broadcast
	return &out, c.Call(ctx, "send_to_system", m, &out)
}

// Member describes a client's membership of a group.
type Member struct {
	UserID     string `json:"userId,omitempty"`
	Extend     string `json:"extend,omitempty"`
	SendUserID string `json:"sendUserId,omitempty"`
}

// BindToGroup puts a client in group.
func (c *Client) BindToGroup(ctx context.Context, clientID, group string, m Member) error {
	return c.Call(ctx, "bind_to_group", struct {
		ClientID  string `json:"clientId"`
		GroupName string `json:"groupName"`
		Member
	}{clientID, group, m}, nil)
}

// UnbindFromGroup takes a client out of group.
func (c *Client) UnbindFromGroup(ctx context.Context, clientID, group string) error {
	return c.Call(ctx, "unbind_from_group", map[string]string{"clientId": clientID, "groupName": group}, nil)
}

// OnlineList answers GetOnlineList and GetUserClients.
type OnlineList struct {
	Count       int      `json:"count"`
	List        []string `json:"list"`
	Unreachable []string `json:"unreachable,omitempty"`
}

// GetOnlineList lists the online clients of group ("": the whole system).
func (c *Client) GetOnlineList(ctx context.Context, group string) (*OnlineList, error) {
	var out OnlineList
	return &out, c.Call(ctx, "get_online_list", map[string]string{"groupName": group}, &out)
}

type online struct {
	Online bool `json:"online"`
}

// IsOnline reports whether clientID is an online client of the system.
func (c *Client) IsOnline(ctx context.Context, clientID string) (bool, error) {
	var out online
	return out.Online, c.Call(ctx, "is_online", map[string]string{"clientId": clientID}, &out)
}

// CloseClient closes a client (close frame 1000).
func (c *Client) CloseClient(ctx context.Context, clientID string) error {
	return c.Call(ctx, "close_client", map[string]string{"clientId": clientID}, nil)
}

// BindToUser makes a client belong to userID.
func (c *Client) BindToUser(ctx context.Context, clientID, userID string) error {
	return c.Call(ctx, "bind_to_user", map[string]string{"clientId": clientID, "userId": userID}, nil)
}

type sendToUser struct {
	UserID string `json:"userId"`
	Message
	Ack        bool   `json:"ack,omitempty"`
	AckTimeout string `json:"ackTimeout,omitempty"`
}

// SendToUser pushes m to every online client of userID.
func (c *Client) SendToUser(ctx context.Context, userID string, m Message) (*Broadcast, error) {
	var out Broadcast
	return &out, c.Call(ctx, "send_to_user", sendToUser{UserID: userID, Message: m}, &out)
}

// SendToUserAck is SendToUser asking for an ack: it returns when the first
// of the user's clients acked or timeout passed.
func (c *Client) SendToUserAck(ctx context.Context, userID string, m Message, timeout time.Duration) (*Broadcast, error) {
	req := sendToUser{UserID: userID, Message: m, Ack: true}
	if timeout > 0 {
		req.AckTimeout = timeout.String()
	}
	var out Broadcast
	return &out, c.Call(ctx, "send_to_user", req, &out)
}

// GetUserClients lists the online clients of userID.
func (c *Client) GetUserClients(ctx context.Context, userID string) (*OnlineList, error) {
	var out OnlineList
	return &out, c.Call(ctx, "get_user_clients", map[string]string{"userId": userID}, &out)
}

// IsUserOnline reports whether userID has an online client.
func (c *Client) IsUserOnline(ctx context.Context, userID string) (bool, error) {
	var out online
	return out.Online, c.Call(ctx, "is_user_online", map[string]string{"userId": userID}, &out)
}
