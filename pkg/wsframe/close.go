package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// Close codes (RFC 6455 section 7.4.1 and the IANA registry).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005 // never sent: a close frame without a code
	CloseAbnormal        = 1006 // never sent: the connection dropped
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseMandatoryExt    = 1010
	CloseInternalError   = 1011
	CloseServiceRestart  = 1012
	CloseTryAgainLater   = 1013
	CloseBadGateway      = 1014
	CloseTLSHandshake    = 1015 // never sent
)

// ValidCloseCode reports whether a peer may send code in a close frame:
// the registered codes 1000-1003 and 1007-1014, and 3000-4999 (registered
// by libraries and free for applications). 1004-1006 and 1015 are reserved
// and never appear on the wire.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

var (
	errCloseLen    = &Error{CloseProtocolError, "close frame with a 1-byte payload"}
	errCloseCode   = &Error{CloseProtocolError, "close frame with an invalid code"}
	errCloseReason = &Error{CloseInvalidPayload, "close reason is not valid UTF-8"}
)

// ParseClose reads a close frame's payload: the code (CloseNoStatus when
// there is none) and the reason. A payload RFC 6455 forbids gives an *Error
// naming the code to answer with: 1002 for a 1-byte payload or an invalid
// code, 1007 for a reason that is not UTF-8.
func ParseClose(payload []byte) (code int, reason []byte, err error) {
	switch {
	case len(payload) == 0:
		return CloseNoStatus, nil, nil
	case len(payload) == 1:
		return 0, nil, errCloseLen
	}
	code = int(binary.BigEndian.Uint16(payload))
	if !ValidCloseCode(code) {
		return code, nil, errCloseCode
	}
	reason = payload[2:]
	if !utf8.Valid(reason) {
		return code, nil, errCloseReason
	}
	return code, reason, nil
}
