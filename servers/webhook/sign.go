package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Header names of a webhook POST.
const (
	HeaderTimestamp = "X-Gows-Timestamp"
	HeaderSignature = "X-Gows-Signature"
)

// Sign returns the X-Gows-Signature value of body posted at ts (unix
// seconds): "sha256=" and the hex HMAC-SHA256 of "<ts>.<body>" with secret.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a received POST: the signature must match and, when
// maxSkew > 0, the timestamp must be within maxSkew of now.
func Verify(secret, timestamp, signature string, body []byte, maxSkew time.Duration) bool {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return false
	}
	if maxSkew > 0 {
		d := time.Since(time.Unix(ts, 0))
		if d > maxSkew || d < -maxSkew {
			return false
		}
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(strings.TrimSpace(signature)))
}
