package wstest

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Sessions and acknowledgements: a pushed frame to a client with a session
// ends with "seq": N; one that asks for an ack carries "ack": true before
// it; the client acks with the text frame {"ack":"<messageId>"}.

// ResumeQuery is the query of a resume: resume=<token>&lastSeq=<last>.
func ResumeQuery(token string, last int64) url.Values {
	return url.Values{"resume": {token}, "lastSeq": {strconv.FormatInt(last, 10)}}
}

// IsResumed reports whether the welcome says "resumed": true.
func (w Welcome) IsResumed() bool { return w.Resumed != nil && *w.Resumed }

// SessionKeys are the keys of a pushed frame with sessions on; with ack
// "ack" comes before "seq".
func SessionKeys(ack bool) []string {
	k := append([]string(nil), PushKeys...)
	if ack {
		k = append(k, "ack")
	}
	return append(k, "seq")
}

// CheckSeq requires f to be a pushed frame of a session with sequence
// number seq: keys exactly SessionKeys(ack), ending in `,"seq":N}`.
func CheckSeq(t testing.TB, receiver string, f Frame, seq int64, ack bool) {
	t.Helper()
	if want := SessionKeys(ack); strings.Join(f.Keys, ",") != strings.Join(want, ",") {
		t.Errorf("client %s: frame %s has keys %v, want exactly %v in this order", receiver, f.Raw, f.Keys, want)
	}
	if f.Seq == nil || *f.Seq != seq {
		t.Errorf("client %s: frame %s: want seq %d", receiver, f.Raw, seq)
	}
	suffix := `,"seq":` + strconv.FormatInt(seq, 10) + `}`
	if ack {
		suffix = `,"ack":true` + suffix
	}
	if !bytes.HasSuffix(f.Raw, []byte(suffix)) {
		t.Errorf("client %s: frame %s does not end with %s", receiver, f.Raw, suffix)
	}
	if f.Ack != ack {
		t.Errorf("client %s: frame %s: ack %v, want %v", receiver, f.Raw, f.Ack, ack)
	}
}

// ExpectSeq takes the next frame within d and requires it to carry seq
// (see CheckSeq, no ack).
func (c *Client) ExpectSeq(t testing.TB, d time.Duration, seq int64) Frame {
	t.Helper()
	f := c.NextFrame(t, d)
	CheckSeq(t, c.ID, f, seq, false)
	return f
}

// Ack sends the acknowledgement of messageID.
func (c *Client) Ack(messageID string) error {
	return c.Conn.WriteMessage(websocket.TextMessage, []byte(`{"ack":`+strconv.Quote(messageID)+`}`))
}
