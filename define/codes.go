package define

// Message codes of membership events pushed to group members (SPEC section 3).
const (
	MsgCodeJoin  = 1001
	MsgCodeLeave = 1002
	// MsgCodeMove: a member's session resumed on another node with a new
	// clientId (instead of a leave and a join).
	MsgCodeMove = 1003
)

// WebSocket close codes.
const (
	CloseNormal          = 1000 // close_client
	CloseGoingAway       = 1001 // node shutdown, heartbeat timeout
	CloseProtocolError   = 1002 // a client frame broke RFC 6455
	CloseInvalidPayload  = 1007 // invalid UTF-8 where text is required
	ClosePolicyViolation = 1008 // slow consumer
	CloseTooBig          = 1009 // frame over the read limit
	CloseServiceRestart  = 1012 // the node was declared gone and came back

	CloseMissingSystem  = 4001
	CloseOriginRefused  = 4003
	CloseUnknownSystem  = 4004
	CloseUnauthorized   = 4401
	CloseTooManyClients = 4429
)

// Limits and validation bounds.
const (
	MaxNameLen       = 128 // systemId and groupName
	MaxClientIDLen   = 64
	MaxMessageIDLen  = 32
	MaxClientIDsCall = 10000 // send_to_clients
)
