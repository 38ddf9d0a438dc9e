package wsframe

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// parseServerFrame checks a server frame (FIN set, unmasked, length right)
// and returns its first byte and payload.
func parseServerFrame(t *testing.T, f []byte) (byte, []byte) {
	t.Helper()
	if len(f) < 2 || f[0]&FinBit == 0 || f[1]&0x80 != 0 {
		t.Fatalf("bad header % x", f[:min(len(f), 2)])
	}
	n, p := int(f[1]&0x7F), f[2:]
	switch n {
	case 126:
		n, p = int(binary.BigEndian.Uint16(p)), p[2:]
		if n < 126 {
			t.Fatalf("16-bit length %d not minimal", n)
		}
	case 127:
		n, p = int(binary.BigEndian.Uint64(p)), p[8:]
		if n <= 0xFFFF {
			t.Fatalf("64-bit length %d not minimal", n)
		}
	}
	if n != len(p) {
		t.Fatalf("length %d, payload %d", n, len(p))
	}
	if HeaderLen(n) != len(f)-n {
		t.Fatalf("HeaderLen(%d) = %d, header is %d", n, HeaderLen(n), len(f)-n)
	}
	return f[0], p
}

func TestBuilders(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 300000} {
		payload := bytes.Repeat([]byte("a"), n)
		b0, p := parseServerFrame(t, Text(payload))
		if b0 != FinBit|OpText || !bytes.Equal(p, payload) {
			t.Fatalf("text of %d bytes: first byte %x", n, b0)
		}
		// A server frame read back by the package's own reader, once masked.
		masked := cf(b0, string(payload))
		r := NewReader(bytes.NewReader(masked))
		if _, err := r.Next(); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got, err := r.ReadPayload(nil); err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("n=%d: read back %d bytes, %v", n, len(got), err)
		}
	}
	for op, f := range map[byte][]byte{OpPing: Ping([]byte("x")), OpPong: Pong([]byte("x"))} {
		if b0, p := parseServerFrame(t, f); b0 != FinBit|op || string(p) != "x" {
			t.Fatalf("opcode %x: %x %q", op, b0, p)
		}
	}
	if b0 := AppendHeader(nil, FinBit|RSV1Bit|OpText, 3)[0]; b0 != 0xC1 {
		t.Fatalf("compressed header first byte %x", b0)
	}
}

func TestCloseBuilder(t *testing.T) {
	_, p := parseServerFrame(t, Close(1008, "slow consumer"))
	if binary.BigEndian.Uint16(p) != 1008 || string(p[2:]) != "slow consumer" {
		t.Fatalf("close payload %q", p)
	}
	_, p = parseServerFrame(t, Close(0, "ignored"))
	if len(p) != 0 {
		t.Fatalf("close without code has payload %q", p)
	}
	// A long reason is cut to fit a control frame, on a rune boundary.
	for _, reason := range []string{strings.Repeat("r", 300), strings.Repeat("é", 100), "a" + strings.Repeat("€", 60)} {
		_, p = parseServerFrame(t, Close(1000, reason))
		if len(p) > MaxControlPayload || !utf8.Valid(p[2:]) || !strings.HasPrefix(reason, string(p[2:])) {
			t.Fatalf("reason cut to %d bytes %q", len(p), p[2:])
		}
		if _, _, err := ParseClose(p); err != nil {
			t.Fatalf("own close frame rejected: %v", err)
		}
	}
}

func TestAppendString(t *testing.T) {
	cases := map[string]string{
		"":                 `""`,
		"plain":            `"plain"`,
		"q\"b\\":           `"q\"b\\"`,
		"\n\r\t\x00\x1f":   `"\n\r\t\u0000\u001f"`,
		"é€𝄞\u2028":        "\"é€𝄞\u2028\"",
		"a\xffb":           `"a\ufffdb"`,
		"\xe2\x82":         `"\ufffd\ufffd"`,
		"<html>&":          `"<html>&"`,
		"\x7f":             "\"\x7f\"",
		"tail\xf0\x9d\x84": `"tail\ufffd\ufffd\ufffd"`,
	}
	for in, want := range cases {
		got := string(AppendString([]byte("x"), in))
		if got != "x"+want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got[1:], want)
		}
		var back string
		if err := json.Unmarshal([]byte(got[1:]), &back); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "hello, \"world\" — a message of ordinary length with an escape\n"
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}

func BenchmarkReaderDiscard(b *testing.B) {
	frames := bytes.Repeat(cf(0x81, strings.Repeat("x", 100)), 100)
	src := bytes.NewReader(frames)
	b.ReportAllocs()
	b.SetBytes(int64(len(frames)))
	for b.Loop() {
		src.Reset(frames)
		r := NewReader(src)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
