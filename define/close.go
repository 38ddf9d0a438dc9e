package define

// Disconnect is one reason the server ends a connection: the close frame it
// writes, the label it is counted under, and what happens to frames still
// queued. Every reason the server closes for is a named value below, so a
// close site says why, not how.
type Disconnect struct {
	// Code is the close code written to the client; 0 writes no close
	// frame (the socket has already failed).
	Code int
	// Text is the close frame's reason (at most 123 bytes are sent).
	Text string
	// Reason labels gows_disconnects_total and the logs.
	Reason string
	// Drop discards frames still queued; otherwise they are written before
	// the close frame.
	Drop bool
}

// Metric labels of disconnects.
const (
	ReasonNormal        = "normal"          // the client closed the connection (close frame or EOF)
	ReasonHeartbeat     = "heartbeat"       // nothing received within pongWait
	ReasonSlowConsumer  = "slow_consumer"   // the outgoing queue overflowed
	ReasonTooBig        = "too_big"         // a message over the read limit
	ReasonProtocolError = "protocol_error"  // a frame that breaks RFC 6455 or invalid UTF-8
	ReasonShutdown      = "shutdown"        // the node is draining
	ReasonKicked        = "kicked"          // close_client
	ReasonWriteError    = "write_error"     // the socket failed on write
	ReasonWriteTimeout  = "write_timeout"   // a write did not complete within writeTimeout
	ReasonNodeLost      = "node_lost"       // the node was declared gone by its cluster
	ReasonSessionExpire = "session_expired" // a suspended session was not resumed within sessionTTL
	ReasonMoved         = "moved"           // the session resumed on another node
)

// The reasons the server closes a connection for.
var (
	// DisconnectClientClose answers the client's close frame; the code is
	// the client's (see WithCode).
	DisconnectClientClose = Disconnect{Code: CloseNormal, Reason: ReasonNormal}
	// DisconnectConnLost: the connection ended without a close frame.
	DisconnectConnLost     = Disconnect{Code: CloseNormal, Reason: ReasonNormal}
	DisconnectHeartbeat    = Disconnect{Code: CloseGoingAway, Text: "heartbeat timeout", Reason: ReasonHeartbeat, Drop: true}
	DisconnectSlowConsumer = Disconnect{Code: ClosePolicyViolation, Text: "slow consumer", Reason: ReasonSlowConsumer, Drop: true}
	DisconnectTooBig       = Disconnect{Code: CloseTooBig, Text: "message too big", Reason: ReasonTooBig, Drop: true}
	DisconnectProtocol     = Disconnect{Code: CloseProtocolError, Text: "protocol error", Reason: ReasonProtocolError, Drop: true}
	DisconnectInvalidUTF8  = Disconnect{Code: CloseInvalidPayload, Text: "invalid UTF-8", Reason: ReasonProtocolError, Drop: true}
	DisconnectShutdown     = Disconnect{Code: CloseGoingAway, Text: "server shutting down", Reason: ReasonShutdown}
	DisconnectKicked       = Disconnect{Code: CloseNormal, Text: "closed by server", Reason: ReasonKicked}
	DisconnectWriteError   = Disconnect{Reason: ReasonWriteError, Drop: true}
	DisconnectWriteTimeout = Disconnect{Reason: ReasonWriteTimeout, Drop: true}
	DisconnectNodeLost     = Disconnect{Code: CloseServiceRestart, Text: "service restart", Reason: ReasonNodeLost, Drop: true}
	// DisconnectSessionExpired ends a suspended session (no connection, so
	// no close frame).
	DisconnectSessionExpired = Disconnect{Reason: ReasonSessionExpire, Drop: true}
)

// WithCode returns d with another close code (the echo of a client's code).
func (d Disconnect) WithCode(code int) Disconnect {
	d.Code = code
	return d
}
