package servers

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/pkg/wsframe"
)

// payloadOf strips a server frame's header, checking it on the way.
func payloadOf(t testing.TB, f frame) (byte, []byte) {
	t.Helper()
	if f[0]&0x80 == 0 {
		t.Fatalf("FIN bit not set")
	}
	op := f[0] & 0x0F
	n := int(f[1] & 0x7F)
	if f[1]&0x80 != 0 {
		t.Fatalf("server frame is masked")
	}
	p := f[2:]
	switch n {
	case 126:
		n = int(binary.BigEndian.Uint16(p))
		p = p[2:]
	case 127:
		n = int(binary.BigEndian.Uint64(p))
		p = p[8:]
	}
	if len(p) != n {
		t.Fatalf("length %d, payload %d", n, len(p))
	}
	return op, p
}

func TestMessageFrameKeyOrderAndData(t *testing.T) {
	for _, data := range []string{``, `null`, `"s"`, `12.5`, `{"b":1,"a":[1,2]}`, `[ 1 , 2 ]`} {
		m := &define.Message{SendUserID: "u\"1", Code: -3, Msg: "hi\n\x01", Data: json.RawMessage(data)}
		op, p := payloadOf(t, messageFrame("mid", m))
		if op != opText {
			t.Fatalf("opcode %x", op)
		}
		want := data
		if want == "" {
			want = "null"
		}
		exp := `{"messageId":"mid","sendUserId":"u\"1","code":-3,"msg":"hi\n\u0001","data":` + want + `}`
		if string(p) != exp {
			t.Fatalf("frame\n got %s\nwant %s", p, exp)
		}
		if !json.Valid(p) {
			t.Fatalf("invalid JSON %s", p)
		}
	}
}

func TestFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 200000} {
		data := `"` + string(bytes.Repeat([]byte("x"), n)) + `"`
		_, p := payloadOf(t, messageFrame("m", &define.Message{Data: json.RawMessage(data)}))
		if !bytes.HasSuffix(p, []byte(data+"}")) {
			t.Fatalf("n=%d: payload corrupt", n)
		}
	}
}

func TestAppendStringInvalidUTF8(t *testing.T) {
	s := string(wsframe.AppendString(nil, "a\xffb\u2028é\\"))
	if !utf8.ValidString(s) {
		t.Fatalf("not UTF-8: %q", s)
	}
	var back string
	if err := json.Unmarshal([]byte(s), &back); err != nil || back != "a\ufffdb\u2028é\\" {
		t.Fatalf("round trip %q -> %q (%v)", s, back, err)
	}
}

func TestCloseFrame(t *testing.T) {
	op, p := payloadOf(t, closeFrame(1008, "slow consumer"))
	if op != opClose || binary.BigEndian.Uint16(p) != 1008 || string(p[2:]) != "slow consumer" {
		t.Fatalf("close frame %x %q", op, p)
	}
	_, p = payloadOf(t, closeFrame(1000, string(bytes.Repeat([]byte("r"), 300))))
	if len(p) > 125 {
		t.Fatalf("control frame payload %d > 125", len(p))
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	m := &define.Message{SendUserID: "user-1", Code: 7, Msg: "hello", Data: json.RawMessage(`{"text":"0123456789012345678901234567890123456789"}`)}
	b.ReportAllocs()
	for b.Loop() {
		_ = messageFrame("00112233445566778899aabbccddeeff", m)
	}
}
