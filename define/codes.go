package define

// Message codes of membership events pushed to group members (SPEC section 3).
const (
	MsgCodeJoin  = 1001
	MsgCodeLeave = 1002
)

// WebSocket close codes.
const (
	CloseNormal          = 1000 // close_client
	CloseGoingAway       = 1001 // node shutdown, heartbeat timeout
	ClosePolicyViolation = 1008 // slow consumer
	CloseTooBig          = 1009 // frame over the read limit

	CloseMissingSystem  = 4001
	CloseOriginRefused  = 4003
	CloseUnknownSystem  = 4004
	CloseUnauthorized   = 4401
	CloseTooManyClients = 4429
)

// Why a client left; used for metrics and logs.
const (
	ReasonNormal       = "normal"    // the client closed the connection
	ReasonHeartbeat    = "heartbeat" // nothing received within pongWait
	ReasonSlowConsumer = "slow_consumer"
	ReasonTooBig       = "too_big"
	ReasonShutdown     = "shutdown"
	ReasonKicked       = "kicked" // close_client
	ReasonWriteError   = "write_error"
)

// Limits and validation bounds.
const (
	MaxNameLen       = 128 // systemId and groupName
	MaxClientIDLen   = 64
	MaxMessageIDLen  = 32
	MaxClientIDsCall = 10000 // send_to_clients
)
