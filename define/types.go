package define

import "encoding/json"

// Response is the envelope of every HTTP answer and of the first WebSocket frame.
type Response struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data any    `json:"data"`
}

// Message is what a backend pushes: the fields of a pushed frame besides messageId.
type Message struct {
	SendUserID string          `json:"sendUserId"`
	Code       int             `json:"code"`
	Msg        string          `json:"msg"`
	Data       json.RawMessage `json:"data"`
}

// MemberEvent is the data of a 1001/1002 membership event.
type MemberEvent struct {
	ClientID string `json:"clientId"`
	// PreviousClientID is set on a 1003 event only: the clientId the
	// client had before its session moved to another node.
	PreviousClientID string `json:"previousClientId,omitempty"`
	GroupName        string `json:"groupName"`
	UserID           string `json:"userId"`
	Extend           string `json:"extend"`
}

// SendResult answers send_to_clients.
type SendResult struct {
	MessageID string   `json:"messageId"`
	Delivered int      `json:"delivered"`
	Offline   []string `json:"offline"`
}

// BroadcastResult answers send_to_group and send_to_system. Unreachable lists
// cluster nodes that did not answer in time; it is omitted when empty.
type BroadcastResult struct {
	MessageID   string   `json:"messageId"`
	Recipients  int      `json:"recipients"`
	Unreachable []string `json:"unreachable,omitempty"`
}

// OnlineList answers get_online_list.
type OnlineList struct {
	Count       int      `json:"count"`
	List        []string `json:"list"`
	Unreachable []string `json:"unreachable,omitempty"`
}

// UserSendResult answers send_to_user. Acked is present only when an ack
// was requested.
type UserSendResult struct {
	MessageID   string   `json:"messageId"`
	Recipients  int      `json:"recipients"`
	Acked       *bool    `json:"acked,omitempty"`
	Unreachable []string `json:"unreachable,omitempty"`
}

// AckedSend answers send_to_client with "ack": true.
type AckedSend struct {
	MessageID  string `json:"messageId"`
	Recipients int    `json:"recipients"`
	Acked      bool   `json:"acked"`
}
