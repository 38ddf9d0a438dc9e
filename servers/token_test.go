package servers

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testKey = []byte("connect-secret")

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConnectToken(t *testing.T) {
	now := time.Now()
	key := func(*jwt.Token) (any, error) { return testKey, nil }
	p := NewConnectParser()
	good := sign(t, jwt.SigningMethodHS256, testKey, jwt.MapClaims{"systemId": "s1", "userId": "u7", "exp": now.Add(time.Minute).Unix()})
	if uid, err := VerifyConnectToken(p, key, good, "s1"); err != nil || uid != "u7" {
		t.Fatalf("good token: %q %v", uid, err)
	}
	skew := sign(t, jwt.SigningMethodHS256, testKey, jwt.MapClaims{"systemId": "s1", "exp": now.Add(-10 * time.Second).Unix()})
	if _, err := VerifyConnectToken(p, key, skew, "s1"); err != nil {
		t.Fatalf("token within leeway refused: %v", err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"systemId": "s1", "exp": now.Add(time.Minute).Unix()})
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct{ tok, sys, want string }{
		"missing":       {"", "s1", "missing"},
		"other system":  {good, "s2", "another systemId"},
		"expired":       {sign(t, jwt.SigningMethodHS256, testKey, jwt.MapClaims{"systemId": "s1", "exp": now.Add(-time.Hour).Unix()}), "s1", "expired"},
		"no exp":        {sign(t, jwt.SigningMethodHS256, testKey, jwt.MapClaims{"systemId": "s1"}), "s1", "exp"},
		"not yet":       {sign(t, jwt.SigningMethodHS256, testKey, jwt.MapClaims{"systemId": "s1", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}), "s1", "not valid yet"},
		"wrong key":     {sign(t, jwt.SigningMethodHS256, []byte("other"), jwt.MapClaims{"systemId": "s1", "exp": now.Add(time.Minute).Unix()}), "s1", "invalid"},
		"HS512":         {sign(t, jwt.SigningMethodHS512, testKey, jwt.MapClaims{"systemId": "s1", "exp": now.Add(time.Minute).Unix()}), "s1", "invalid"},
		"alg none":      {noneTok, "s1", "invalid"},
		"garbage":       {"a.b.c", "s1", "invalid"},
		"tampered body": {good[:len(good)-2] + "xx", "s1", "invalid"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := VerifyConnectToken(p, key, c.tok, c.sys)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func FuzzConnectToken(f *testing.F) {
	f.Add("", "s1")
	f.Add("a.b.c", "s1")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzeXN0ZW1JZCI6InMxIn0.x", "s1")
	key := func(*jwt.Token) (any, error) { return testKey, nil }
	p := NewConnectParser()
	f.Fuzz(func(t *testing.T, tok, sys string) {
		uid, err := VerifyConnectToken(p, key, tok, sys)
		if err == nil && uid != "" && len(uid) > 256 {
			t.Fatalf("accepted oversize userId")
		}
		// Nothing random can be a valid signature: any accepted token must
		// have been signed with the key, which the fuzzer does not have.
		if err == nil {
			t.Fatalf("accepted a token not signed by us: %q", tok)
		}
	})
}
