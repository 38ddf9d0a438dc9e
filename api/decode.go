package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-websocket/go-websocket/define"
)

// readBody reads the whole request body (bounded by the router's limit).
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, define.Errorf(define.CodeBodyTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		}
		return nil, define.Errorf(define.CodeInvalidRequest, "could not read request body: %v", err)
	}
	return body, nil
}

func decodeBytes(body []byte, v any, allowEmpty bool) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		if allowEmpty {
			return nil
		}
		return define.Errorf(define.CodeInvalidRequest, "request body is empty: expected a JSON object")
	}
	if body[0] != '{' {
		return define.Errorf(define.CodeInvalidRequest, "request body must be a JSON object")
	}
	if !utf8.Valid(body) {
		return define.Errorf(define.CodeInvalidRequest, "request body is not valid UTF-8")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return define.Errorf(define.CodeInvalidRequest, "field %s must be %s, got %s", te.Field, typeName(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return define.Errorf(define.CodeInvalidRequest, "malformed JSON at byte %d: %v", se.Offset, se)
		default:
			return define.Errorf(define.CodeInvalidRequest, "malformed JSON: %v", err)
		}
	}
	return nil
}

func typeName(kind string) string {
	switch kind {
	case "int", "int64", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}

// required fails when a required string field is empty.
func required(field, v string) error {
	if v == "" {
		return define.Errorf(define.CodeInvalidRequest, "field %s is required", field)
	}
	return nil
}

// ValidName checks a systemId or groupName: 1-128 characters, no control
// characters.
func ValidName(v string) bool {
	if v == "" || utf8.RuneCountInString(v) > define.MaxNameLen || !utf8.ValidString(v) {
		return false
	}
	return !strings.ContainsFunc(v, unicode.IsControl)
}

// name validates a required name field.
func name(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if !ValidName(v) {
		return define.Errorf(define.CodeInvalidRequest, "field %s must be 1-%d characters without control characters", field, define.MaxNameLen)
	}
	return nil
}

// message validates the pushed fields shared by every send endpoint.
func message(m *define.Message) error {
	if len(m.Data) > 0 && !json.Valid(m.Data) {
		return define.Errorf(define.CodeInvalidRequest, "field data must be valid JSON")
	}
	return nil
}

func fieldErr(field, format string, args ...any) error {
	return define.Errorf(define.CodeInvalidRequest, "field %s %s", field, fmt.Sprintf(format, args...))
}
