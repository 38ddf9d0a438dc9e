package security

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// README "Running it safely in production": secrets never appear in logs,
// error messages or metrics. The node runs at debug level with API tokens
// and a connect secret; the test makes good and bad calls (wrong tokens,
// tokens without "Bearer", tokens in the query, bad connect tokens), then
// greps the whole log (after SIGTERM), every response body and header, every
// WebSocket frame and close reason, and /metrics for each secret.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	tokA, tokB := "tokA-"+randHex(12), "tokB-"+randHex(12)
	secret := "connect-secret-" + randHex(16)
	n := startNode(t, env{kAPITokens: tokA + "," + tokB, kConnectSecret: secret, kLogLevel: "debug"})

	var seen [][]byte // everything the node sent back
	record := func(r *wstest.Resp) {
		seen = append(seen, r.Body)
		for k, vs := range r.Header {
			seen = append(seen, []byte(k+": "+strings.Join(vs, ",")))
		}
	}
	call := func(path, auth, systemID string, body any) *wstest.Resp {
		h := http.Header{"Content-Type": {"application/json"}}
		if systemID != "" {
			h["systemId"] = []string{systemID}
		}
		if auth != "" {
			h["Authorization"] = []string{auth}
		}
		r := n.raw(t, path, h, body)
		record(r)
		return r
	}

	wantCode(t, call(mainPrefix+"register", "Bearer "+tokA, "", map[string]string{"systemId": "sec"}), 0, "register with tokA")
	wantCode(t, call(legacyPrefix+"register", "Bearer "+tokB, "", map[string]string{"systemId": "sec2"}), 0, "register with tokB")

	// Connect tokens: a good one, and bad ones carrying probes.
	exp := time.Now().Add(time.Hour).Unix()
	goodJWT := signToken(t, secret, jwt.SigningMethodHS256, jwt.MapClaims{"systemId": "sec", "userId": "u-" + randHex(4), "exp": exp})
	probeSecret := "probe-secret-" + randHex(8)
	badJWTs := []string{
		signToken(t, probeSecret, jwt.SigningMethodHS256, jwt.MapClaims{"systemId": "sec", "exp": exp}),
		signToken(t, secret, jwt.SigningMethodHS256, jwt.MapClaims{"systemId": "sec", "exp": time.Now().Add(-time.Hour).Unix()}),
		signToken(t, secret, jwt.SigningMethodHS256, jwt.MapClaims{"systemId": "sec2", "exp": exp}),
		signToken(t, secret, jwt.SigningMethodHS512, jwt.MapClaims{"systemId": "sec", "exp": exp}),
		signToken(t, "", jwt.SigningMethodNone, jwt.MapClaims{"systemId": "sec", "exp": exp}),
		"probe-token-" + randHex(8),
	}
	c := n.dialOpts(t, "sec", dialOpt{token: &goodJWT})
	for _, tok := range badJWTs {
		rc, err := n.connect(t, "sec", dialOpt{token: &tok})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		code, frames, err := rc.CloseFrames(5 * time.Second)
		if code != 4401 {
			t.Errorf("bad connect token: close %d (%v), want 4401", code, err)
		}
		seen = append(seen, frames...)
		if err != nil {
			seen = append(seen, []byte(err.Error()))
		}
		rc.Close()
	}

	// API calls, good and bad.
	probeAPI := "probe-api-" + randHex(8)
	probeQuery := "probe-query-" + randHex(8)
	good := map[string]any{"clientId": c.ID, "groupName": "g", "data": "x"}
	for _, ep := range []string{"bind_to_group", "send_to_client", "get_online_list", "is_online", "send_to_group", "send_to_system"} {
		wantCode(t, call(mainPrefix+ep, "Bearer "+tokA, "sec", good), 0, ep+" with tokA")
		wantCode(t, call(legacyPrefix+ep, "Bearer "+tokB, "sec", good), 0, ep+" with tokB")
	}
	for _, auth := range []string{"", "Bearer " + probeAPI, tokA, tokB, "Basic " + tokA, "Bearer " + tokA + "x", "Bearer " + secret, "Bearer " + goodJWT} {
		for _, ep := range []string{"send_to_client", "register", "close_client"} {
			wantCode(t, call(mainPrefix+ep, auth, "sec", good), 10005, "bad Authorization")
		}
	}
	wantCode(t, call(mainPrefix+"is_online?token="+probeQuery+"&apiToken="+probeQuery, "", "sec", good), 10005, "token in the query")
	wantCode(t, call(mainPrefix+"is_online", "Bearer "+tokA, "no-such-system", good), 10003, "unknown system")
	wantCode(t, call(mainPrefix+"send_to_client", "Bearer "+tokA, "sec", `{"clientId":`), 10001, "malformed JSON")
	wantCode(t, call(mainPrefix+"close_client", "Bearer "+tokA, "sec", map[string]any{"clientId": c.ID}), 0, "close_client")
	if code, frames, _ := c.CloseFrames(5 * time.Second); code != 1000 {
		t.Errorf("close_client: close code %d, want 1000", code)
	} else {
		seen = append(seen, frames...)
	}

	metricsText, _ := n.metrics(t)
	n.Stop() // flush everything the node logs, shutdown included
	log := n.Output()
	if !strings.Contains(log, "DEBUG") || !strings.Contains(log, "request") {
		t.Fatalf("the log has no debug or request lines; the grep would prove nothing:\n%s", log)
	}

	secrets := map[string]string{
		"API token A":            tokA,
		"API token B":            tokB,
		"connect secret":         secret,
		"wrong API token sent":   probeAPI,
		"token sent in a query":  probeQuery,
		"valid connect token":    goodJWT,
		"valid token signature":  goodJWT[strings.LastIndexByte(goodJWT, '.')+1:],
		"garbage connect token":  badJWTs[len(badJWTs)-1],
		"badly signed token":     badJWTs[0],
		"expired connect token":  badJWTs[1],
		"other system's token":   badJWTs[2],
		"HS512 connect token":    badJWTs[3],
		"unsigned connect token": badJWTs[4],
	}
	places := map[string][]byte{"the node's log": []byte(log), "/metrics": []byte(metricsText)}
	for name, s := range secrets {
		for where, text := range places {
			if i := bytes.Index(text, []byte(s)); i >= 0 {
				t.Errorf("%s appears in %s: %q", name, where, around(text, i, len(s)))
			}
		}
		for _, b := range seen {
			if i := bytes.Index(b, []byte(s)); i >= 0 {
				t.Errorf("%s appears in an answer of the node: %q", name, around(b, i, len(s)))
			}
		}
	}
}

func around(b []byte, i, n int) string {
	from, to := max(0, i-80), min(len(b), i+n+80)
	return string(b[from:to])
}
