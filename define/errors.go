// Package define holds the vocabulary shared by every layer: error codes,
// message codes, close codes and the wire types.
package define

import (
	"fmt"
	"net/http"
)

// API error codes (SPEC section 5).
const (
	CodeSuccess          = 0
	CodeInvalidRequest   = 10001
	CodeMissingSystemID  = 10002
	CodeUnknownSystem    = 10003
	CodeSystemExists     = 10004
	CodeUnauthorized     = 10005
	CodeClientOffline    = 10006
	CodeBodyTooLarge     = 10007
	CodeMethodNotAllowed = 10008
	CodeUnavailable      = 10009
	CodeRateLimited      = 10010
	CodeInternal         = 10011
	CodeOriginForbidden  = 10012
)

// statusOf maps every error code to its HTTP status.
var statusOf = map[int]int{
	CodeInvalidRequest:   http.StatusBadRequest,
	CodeMissingSystemID:  http.StatusBadRequest,
	CodeUnknownSystem:    http.StatusNotFound,
	CodeSystemExists:     http.StatusConflict,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeClientOffline:    http.StatusNotFound,
	CodeBodyTooLarge:     http.StatusRequestEntityTooLarge,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeInternal:         http.StatusInternalServerError,
	CodeOriginForbidden:  http.StatusForbidden,
}

// HTTPStatus returns the HTTP status that goes with an error code.
func HTTPStatus(code int) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	if code == CodeSuccess {
		return http.StatusOK
	}
	return http.StatusInternalServerError
}

// Error is an API error: a code from the table above and an English message.
type Error struct {
	Code int
	Msg  string
	// Status overrides the default HTTP status of Code when non-zero.
	Status int
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Msg) }

// HTTPStatus is the status the error is rendered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return HTTPStatus(e.Code)
}

// Errorf builds an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Frequently used errors.
var (
	ErrClientOffline = &Error{Code: CodeClientOffline, Msg: "client is not online"}
	ErrUnknownSystem = &Error{Code: CodeUnknownSystem, Msg: "systemId is not registered"}
	ErrSystemExists  = &Error{Code: CodeSystemExists, Msg: "systemId is already registered"}
	ErrMissingSystem = &Error{Code: CodeMissingSystemID, Msg: "missing systemId"}
)
