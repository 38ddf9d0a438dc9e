// Package rpcwire is what nodes of a cluster say to each other over
// net/rpc: the method names of the node service and their arguments and
// replies. The node (package servers) runs them; the cluster (package
// cluster) carries them. Both import this package, nothing else does.
package rpcwire

import (
	"time"

	"github.com/go-websocket/go-websocket/define"
)

// Unicast operation kinds.
const (
	OpSend     = "send"
	OpSendMany = "send_many"
	OpBind     = "bind"
	OpUnbind   = "unbind"
	OpClose    = "close"
	OpIsOnline = "is_online"
	OpBindUser = "bind_user"
	// OpTakeSession moves a client's session to the calling node, which
	// a resume reached (the reply carries it).
	OpTakeSession = "take_session"
)

// UnicastOp is a unicast carried to the owning node.
type UnicastOp struct {
	Kind      string
	SystemID  string
	ClientID  string
	ClientIDs []string // OpSendMany
	Group     string
	UserID    string
	Extend    string
	MessageID string
	Msg       define.Message
	// Ack: the frame asks the client for an ack; the owning node waits
	// for it at most AckWait and answers Acked.
	Ack     bool
	AckWait time.Duration
	// OpTakeSession: the last seq the client received and the clientId
	// the calling node gave its new connection.
	LastSeq     uint64
	NewClientID string
}

// UnicastReply answers a UnicastOp. Code is 0 or a define error code; Msg
// explains a 10001.
type UnicastReply struct {
	Code      int
	Online    bool
	Delivered int
	Offline   []string
	Acked     bool
	Msg       string
	Session   *Session // OpTakeSession
}

// Session is a client's session on its way to another node: the frames
// after the resume's lastSeq, the sequence, the user and the groups.
type Session struct {
	Seq       uint64
	Frames    []KeptFrame
	UserID    string
	TokenUser bool // the user came from the connect token
	Groups    []Membership
}

// KeptFrame is one kept frame (complete, as first built) and its seq.
type KeptFrame struct {
	Frame []byte
	Seq   uint64
}

// Membership is one group of a moving client.
type Membership struct {
	Group, UserID, Extend string
}

// Broadcast operation kinds.
const (
	OpGroup    = "group"
	OpSystem   = "system"
	OpList     = "list"
	OpStats    = "stats"
	OpUser     = "user"
	OpUserList = "user_list"
)

// BroadcastOp is a fan-out run on every node (or on the nodes holding
// members).
type BroadcastOp struct {
	Kind      string
	SystemID  string
	Group     string
	UserID    string // OpUser, OpUserList
	MessageID string
	Msg       define.Message
	// Ack (OpUser): the frame asks for an ack; a node other than the
	// caller's waits for one at most AckWait and answers Acked.
	Ack     bool
	AckWait time.Duration
}

// BroadcastReply is one node's answer to a BroadcastOp.
type BroadcastReply struct {
	Recipients int
	IDs        []string
	Stats      *Stats
	Acked      bool
}

// Stats is a point-in-time picture of one node for the dashboard.
type Stats struct {
	NodeID             string         `json:"nodeId"`
	HTTPAddr           string         `json:"httpAddr"`
	StartedAt          time.Time      `json:"startedAt"`
	UptimeSeconds      float64        `json:"uptimeSeconds"`
	Connections        int            `json:"connections"`
	Systems            map[string]int `json:"systems"`
	Groups             int            `json:"groups"`
	MessagesPushed     uint64         `json:"messagesPushed"`
	MessagesDropped    uint64         `json:"messagesDropped"`
	SlowConsumerCloses uint64         `json:"slowConsumerCloses"`
	RPCErrors          uint64         `json:"rpcErrors"`
}

// ClientPresence is what the cluster's presence index keeps of one client:
// its system, its user, and its groups with the userId and extend of each
// membership. It is the JSON value of the client's etcd key.
type ClientPresence struct {
	SystemID string                 `json:"s"`
	UserID   string                 `json:"u,omitempty"`
	Groups   map[string]GroupMember `json:"g,omitempty"`
}

// GroupMember is one membership of a client.
type GroupMember struct {
	UserID string `json:"u,omitempty"`
	Extend string `json:"e,omitempty"`
}

// RPC method names of the node service, as net/rpc spells them.
const (
	RPCUnicast   = "Node.Unicast"
	RPCBroadcast = "Node.Broadcast"
	RPCPresence  = "Node.Presence"
)

// PresenceOp is a node's note to its peers about its presence writes.
type PresenceOp struct {
	Node string // the sender's node id
	// Dirty: a write failed; send the sender every group message until a
	// later PresenceOp with Rev says its writes are in etcd.
	Dirty bool
	// Rev: the sender's writes up to this etcd revision are committed;
	// the receiver answers once its cache reflects it (or a short bound).
	Rev int64
}

// PresenceReply answers a PresenceOp; Applied is false when the receiver's
// cache did not reach Rev in time (it then routes group sends to every node
// until it does).
type PresenceReply struct {
	Applied bool
}
