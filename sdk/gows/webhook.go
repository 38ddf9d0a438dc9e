package gows

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook header names.
const (
	HeaderTimestamp = "X-Gows-Timestamp"
	HeaderSignature = "X-Gows-Signature"
)

// WebhookEvent is one event of a webhook POST.
type WebhookEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Time      int64           `json:"time"` // unix milliseconds
	SystemID  string          `json:"systemId"`
	ClientID  string          `json:"clientId"`
	UserID    string          `json:"userId,omitempty"`
	GroupName string          `json:"groupName,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// WebhookPayload is the body of a webhook POST.
type WebhookPayload struct {
	Events []WebhookEvent `json:"events"`
}

// ErrBadSignature is returned for a webhook whose signature or timestamp
// does not verify.
var ErrBadSignature = errors.New("gows: webhook signature does not verify")

// VerifySignature checks a webhook: signature is the X-Gows-Signature value
// ("sha256=<hex>"), the HMAC-SHA256 of "<timestamp>.<body>" with secret.
// With maxSkew > 0 the timestamp must also be within maxSkew of now (it
// bounds replays).
func VerifySignature(secret, timestamp, signature string, body []byte, maxSkew time.Duration) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp %q", ErrBadSignature, timestamp)
	}
	if maxSkew > 0 {
		if d := time.Since(time.Unix(ts, 0)); d > maxSkew || d < -maxSkew {
			return fmt.Errorf("%w: timestamp %s off by %v", ErrBadSignature, timestamp, d.Round(time.Second))
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signature))) {
		return ErrBadSignature
	}
	return nil
}

// ParseWebhook reads a webhook request, verifies it (timestamp within 5
// minutes) and decodes its events. Answer 2xx once they are stored: any
// other answer makes the node post them again. Events may arrive more than
// once: deduplicate by ID.
func ParseWebhook(r *http.Request, secret string) (*WebhookPayload, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("gows: read webhook: %w", err)
	}
	if err := VerifySignature(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, 5*time.Minute); err != nil {
		return nil, err
	}
	var p WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("gows: webhook body: %w", err)
	}
	return &p, nil
}
