package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// refusedConnect dials and expects the SPEC 3 refusal: the upgrade is
// answered, one text frame with the error envelope (code), then close.
func refusedConnect(t *testing.T, url string, header http.Header, code, closeCode int) {
	t.Helper()
	conn, resp, err := wsDialer.Dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("%.120s: the upgrade must be answered, got %v (HTTP %d)", url, err, status)
		return
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, msg, err := conn.ReadMessage()
	if err != nil || typ != websocket.TextMessage {
		t.Errorf("%.120s: want an error frame, got type %d, %v", url, typ, err)
		return
	}
	var env struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(msg, &env); err != nil || env.Code != code || env.Msg == "" {
		t.Errorf("%.120s: frame %s, want code %d with a msg", url, msg, code)
	}
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != closeCode {
		t.Errorf("%.120s: want close %d after the error frame, got %v", url, closeCode, err)
	}
}

// SPEC 3 (4429) with maxConnections / maxConnectionsPerSystem.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{
		"GOWS_WEBSOCKET_MAXCONNECTIONS":          "3",
		"GOWS_WEBSOCKET_MAXCONNECTIONSPERSYSTEM": "2",
	})
	n.register(t, "a")
	n.register(t, "b")
	a1, _ := n.dial(t, "a"), n.dial(t, "a")
	refusedConnect(t, n.wsURL("a"), nil, 10010, 4429) // per system
	n.dial(t, "b")
	refusedConnect(t, n.wsURL("b"), nil, 10010, 4429) // per node
	a1.close()
	n.waitOffline(t, "a", a1.id, 3*time.Second)
	c := n.dial(t, "a") // a slot is free again
	mid := n.sendToClient(t, "a", c.id, "1")
	if f := c.expectPush(t, 3*time.Second); f.MessageID != mid {
		t.Errorf("got %s", f.Raw)
	}
	if cnt, _ := n.onlineList(t, "a", ""); cnt != 2 {
		t.Errorf("system a: %d online, want 2 (refused connects must not count)", cnt)
	}
}

// SPEC 3/6: allowedOrigins refuses other browser origins with a 10012 frame
// and close 4003; exact origins and *.domain patterns connect; a client
// without Origin (not a browser) is not restricted.
func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_SECURITY_ALLOWEDORIGINS": "https://app.example.com,https://*.example.org"})
	n.register(t, "o")
	for _, ok := range []string{"https://app.example.com", "https://x.example.org", "https://a.b.example.org", ""} {
		c, err := n.dialOpts("o", dialOpt{header: map[string]string{"Origin": ok}})
		if err != nil {
			t.Errorf("Origin %q: %v", ok, err)
			continue
		}
		c.close()
	}
	for _, bad := range []string{"https://evil.com", "http://app.example.com", "https://app.example.com.evil.com", "https://example.org", "https://xexample.org", "null"} {
		refusedConnect(t, n.wsURL("o"), http.Header{"Origin": {bad}}, 10012, 4003)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwtHS256 signs claims with secret (alg may be changed to forge tokens).
func jwtHS256(secret, alg string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	signing := b64(h) + "." + b64(c)
	if alg == "none" {
		return signing + "."
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

// SPEC 3/6: with connectSecret, ws needs a valid HS256 token for the
// systemId (10005 frame, close 4401 otherwise).
func TestConnectToken(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-for-tests"
	n := startNode(t, map[string]string{"GOWS_SECURITY_CONNECTSECRET": secret})
	n.register(t, "tok")
	n.register(t, "other")
	exp := time.Now().Add(time.Hour).Unix()
	good := jwtHS256(secret, "HS256", map[string]any{"systemId": "tok", "userId": "u1", "exp": exp})
	base := "ws://127.0.0.1:" + strconv.Itoa(n.port) + mainWSPath + "?systemId="
	conn, _, err := wsDialer.Dial(base+"tok&token="+good, nil)
	if err != nil {
		t.Fatalf("valid token: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, first, err := conn.ReadMessage()
	conn.Close()
	if err != nil || !strings.Contains(string(first), `"clientId"`) {
		t.Errorf("valid token: first frame %s, %v", first, err)
	}
	for name, tok := range map[string]string{
		"missing":         "",
		"garbage":         "not.a.jwt",
		"wrong secret":    jwtHS256("other-secret", "HS256", map[string]any{"systemId": "tok", "exp": exp}),
		"expired":         jwtHS256(secret, "HS256", map[string]any{"systemId": "tok", "exp": time.Now().Add(-time.Hour).Unix()}),
		"no exp":          jwtHS256(secret, "HS256", map[string]any{"systemId": "tok"}),
		"other system":    jwtHS256(secret, "HS256", map[string]any{"systemId": "other", "exp": exp}),
		"alg none":        jwtHS256(secret, "none", map[string]any{"systemId": "tok", "exp": exp}),
		"tampered claims": strings.Replace(good, strings.Split(good, ".")[1], b64([]byte(`{"systemId":"tok","userId":"admin","exp":`+strconv.FormatInt(exp, 10)+`}`)), 1),
	} {
		url := base + "tok"
		if tok != "" {
			url += "&token=" + tok
		}
		t.Run(name, func(t *testing.T) { refusedConnect(t, url, nil, 10005, 4401) })
	}
}

// SPEC 5/6: with apiTokens, every API call needs Authorization: Bearer with
// one of them (10005/401 otherwise), on both path sets; ws is not affected.
func TestAPIToken(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_SECURITY_APITOKENS": "tok-one,tok-two"})
	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for _, ep := range apiEndpoints {
			for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer tok-three", "Bearer tok-one,tok-two", "tok-one", "Basic dG9rLW9uZQ==", "Bearer TOK-ONE", "Bearer tok-on"} {
				h := map[string]string{"systemId": "sec"}
				if auth != "" {
					h["Authorization"] = auth
				}
				r, err := n.do(http.MethodPost, prefix+ep, h, bodyBytes(validBody(ep, "x", "g")))
				if r == nil {
					t.Fatal(err)
				}
				if err != nil {
					t.Error(err)
				}
				if r.Code != 10005 {
					t.Errorf("Authorization %q: %s: want 10005 / HTTP 401", auth, r)
				}
			}
		}
	}
	for i, tok := range []string{"tok-one", "tok-two"} {
		sys := "sec" + strconv.Itoa(i)
		h := map[string]string{"Authorization": "Bearer " + tok}
		r, err := n.do(http.MethodPost, mainPrefix+"register", h, bodyBytes(map[string]any{"systemId": sys}))
		if err != nil || r.Code != 0 {
			t.Fatalf("register with %s: %v %v", tok, r, err)
		}
		c := n.dial(t, sys)
		h["systemId"] = sys
		r, err = n.do(http.MethodPost, legacyPrefix+"send_to_client", h, bodyBytes(map[string]any{"clientId": c.id, "data": 1}))
		if err != nil || r.Code != 0 {
			t.Fatalf("send_to_client with %s: %v %v", tok, r, err)
		}
		c.expectPush(t, 3*time.Second)
	}
}

// SPEC 5/6: API requests per system are rate limited (10010/429); another
// system keeps its own budget.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_SECURITY_RATELIMIT": "5", "GOWS_SECURITY_RATEBURST": "5"})
	n.register(t, "busy")
	n.register(t, "calm")
	// 40 calls from 8 goroutines: at most burst + rate x elapsed are served.
	var mu sync.Mutex
	limited, okCount := 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				r, err := n.do(http.MethodPost, mainPrefix+"get_online_list", sysHeader("busy"), []byte(`{}`))
				mu.Lock()
				switch {
				case err != nil:
					t.Error(err)
				case r.Code == 0:
					okCount++
				case r.Code == 10010:
					limited++
				default:
					t.Errorf("%s: want 0 or 10010", r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if max := 5 + int(5*elapsed.Seconds()) + 1; limited == 0 || okCount == 0 || okCount > max {
		t.Errorf("40 calls in %v at 5/s burst 5: %d served (at most %d expected), %d limited", elapsed, okCount, max, limited)
	}
	if r := n.post(t, "get_online_list", "calm", `{}`); r.Code != 0 {
		t.Errorf("another system is limited too: %s", r)
	}
}
