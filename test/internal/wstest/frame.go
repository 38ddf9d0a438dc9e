package wstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// PushKeys are the keys of a pushed frame, in order, with sessions off and
// no ack requested.
var PushKeys = []string{"messageId", "sendUserId", "code", "msg", "data"}

// Frame is a pushed frame (a message or a membership event). Data holds the
// exact bytes of the data value; Keys the keys in the order sent.
type Frame struct {
	Raw        []byte
	Keys       []string
	MessageID  string
	SendUserID string
	Code       int
	Msg        string
	Data       json.RawMessage
	Ack        bool   // "ack": true (an acknowledgement is requested)
	Seq        *int64 // "seq" with sessions on; nil when absent
}

// ParseFrame decodes a pushed frame, keeping the order of its keys and the
// raw bytes of every value. It fails on anything but one JSON object.
func ParseFrame(raw []byte) (Frame, error) {
	f := Frame{Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return f, fmt.Errorf("frame %s is not a JSON object", raw)
	}
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return f, fmt.Errorf("frame %s: %v", raw, err)
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return f, fmt.Errorf("frame %s: %v", raw, err)
		}
		f.Keys = append(f.Keys, k)
		vals[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return f, fmt.Errorf("frame %s: %v", raw, err)
	}
	if dec.More() {
		return f, fmt.Errorf("frame %s: more than one JSON value", raw)
	}
	for k, dst := range map[string]any{"messageId": &f.MessageID, "sendUserId": &f.SendUserID, "code": &f.Code,
		"msg": &f.Msg, "ack": &f.Ack, "seq": &f.Seq} {
		if v, ok := vals[k]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return f, fmt.Errorf("frame %s: key %s: %v", raw, k, err)
			}
		}
	}
	f.Data = vals["data"]
	return f, nil
}

// NextFrame takes the next frame within d and decodes it (no key check).
func (c *Client) NextFrame(t testing.TB, d time.Duration) Frame {
	t.Helper()
	raw, err := c.Next(d)
	if err != nil {
		t.Fatalf("client %s: waiting %v for a frame: %v", c.ID, d, err)
	}
	f, err := ParseFrame(raw)
	if err != nil {
		t.Fatalf("client %s: %v", c.ID, err)
	}
	return f
}

// ExpectPush takes the next frame within d and checks it is a well-formed
// push: one text frame whose keys are exactly PushKeys in that order, with a
// messageId of 1-32 characters.
func (c *Client) ExpectPush(t testing.TB, d time.Duration) Frame {
	t.Helper()
	f := c.NextFrame(t, d)
	if n := c.NonText(); n > 0 {
		t.Errorf("client %s: received %d non-text data frames (every push is one text frame)", c.ID, n)
	}
	if strings.Join(f.Keys, ",") != strings.Join(PushKeys, ",") {
		t.Errorf("client %s: frame %s has keys %v, want exactly %v in this order", c.ID, f.Raw, f.Keys, PushKeys)
	}
	CheckMessageID(t, f.MessageID)
	return f
}

// ExpectID requires the next frame (within 5 s) to be the message
// messageID: nothing else may come first.
func (c *Client) ExpectID(t testing.TB, messageID, what string) Frame {
	t.Helper()
	f := c.NextFrame(t, 5*time.Second)
	if f.MessageID != messageID {
		t.Errorf("client %s: %s: next frame has messageId %q (code %d, data %s), want %q",
			c.ID, what, f.MessageID, f.Code, f.Data, messageID)
	}
	return f
}

// ExpectNoFrame requires that nothing arrives within d.
func (c *Client) ExpectNoFrame(t testing.TB, d time.Duration) {
	t.Helper()
	if raw, err := c.Next(d); err == nil {
		t.Errorf("client %s: unexpected frame %s", c.ID, raw)
	}
}

// CheckMessageID requires a messageId of 1-32 characters.
func CheckMessageID(t testing.TB, id string) {
	t.Helper()
	if id == "" || len(id) > 32 {
		t.Errorf("messageId %q: want 1-32 characters", id)
	}
}

// MemberEvent is the data of a membership event (1001 join, 1002 leave).
type MemberEvent struct {
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
	UserID    string `json:"userId"`
	Extend    string `json:"extend"`
}

// ExpectEvent requires the next push (within 3 s) to be the membership
// event code with exactly the data want.
func (c *Client) ExpectEvent(t testing.TB, code int, want MemberEvent) Frame {
	t.Helper()
	f := c.ExpectPush(t, 3*time.Second)
	CheckEvent(t, c.ID, f, code, want)
	return f
}

// CheckEvent requires f to be the membership event code with exactly the
// data want (the four keys and nothing else) and an empty sendUserId.
func CheckEvent(t testing.TB, receiver string, f Frame, code int, want MemberEvent) {
	t.Helper()
	if f.Code != code {
		t.Fatalf("client %s: want a %d event for %+v, got frame %s", receiver, code, want, f.Raw)
	}
	if f.SendUserID != "" {
		t.Errorf("client %s: event %s: sendUserId %q, want \"\"", receiver, f.Raw, f.SendUserID)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(f.Data, &keys); err != nil {
		t.Fatalf("client %s: event data %s is not an object", receiver, f.Data)
	}
	if len(keys) != 4 {
		t.Errorf("client %s: event data %s: want exactly clientId, groupName, userId, extend", receiver, f.Data)
	}
	var got MemberEvent
	if err := json.Unmarshal(f.Data, &got); err != nil {
		t.Fatalf("client %s: event data %s: %v", receiver, f.Data, err)
	}
	if got != want {
		t.Errorf("client %s: event %d data %+v, want %+v", receiver, code, got, want)
	}
}
