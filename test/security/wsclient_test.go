package security

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// dialOpt tunes one connect.
type dialOpt struct {
	path   string      // default mainWSPath
	origin string      // Origin header ("" none)
	token  *string     // connect token; nil: minted by the node's secret when it has one
	userID string      // userId claim of the minted token
	header http.Header // extra headers
}

// options are the wstest options of o for systemID (the token minted here).
func (n *node) options(t testing.TB, systemID string, o dialOpt) wstest.Options {
	t.Helper()
	tok := ""
	if o.token != nil {
		tok = *o.token
	} else if n.connectSecret != "" {
		tok = signToken(t, n.connectSecret, jwt.SigningMethodHS256, jwt.MapClaims{
			"systemId": systemID, "userId": o.userID, "exp": time.Now().Add(time.Hour).Unix(),
		})
	}
	wo := wstest.Options{Path: o.path, Origin: o.origin, Header: o.header}
	if tok != "" {
		wo.Query = url.Values{"token": {tok}}
	}
	return wo
}

// connect opens a WebSocket without reading anything (the welcome, or the
// refusal, is its first frame); the client is closed when the test ends.
func (n *node) connect(t testing.TB, systemID string, o dialOpt) (*wstest.Client, error) {
	t.Helper()
	wo := n.options(t, systemID, o)
	wo.NoWelcome = true
	c, err := wstest.Dial(n.URL, systemID, wo)
	if err != nil {
		return nil, err
	}
	t.Cleanup(c.Close)
	return c, nil
}

// dialOpts connects and requires the welcome frame.
func (n *node) dialOpts(t testing.TB, systemID string, o dialOpt) *wstest.Client {
	t.Helper()
	c, err := wstest.Dial(n.URL, systemID, n.options(t, systemID, o))
	if err != nil {
		t.Fatalf("connect %s: %v", systemID, err)
	}
	t.Cleanup(c.Close)
	return c
}

func (n *node) dial(t testing.TB, systemID string) *wstest.Client {
	t.Helper()
	return n.dialOpts(t, systemID, dialOpt{})
}

// refused connects and requires the refusal: the upgrade is answered, one
// text frame with the error envelope (code), then a close frame with
// closeCode.
func (n *node) refused(t testing.TB, systemID string, o dialOpt, code, closeCode int, what string) {
	t.Helper()
	wstest.Refused(t, n.URL, systemID, n.options(t, systemID, o), code, closeCode, what)
}

// rawUpgrade performs the opening handshake on a plain TCP connection.
func (n *node) rawUpgrade(t testing.TB, systemID string) (*wstest.Raw, error) {
	t.Helper()
	return wstest.RawUpgrade(t, "127.0.0.1:"+strconv.Itoa(n.Port), mainWSPath+"?systemId="+url.QueryEscape(systemID))
}

// signToken signs claims; SigningMethodNone gives an unsigned "alg: none" token.
func signToken(t testing.TB, secret string, m jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	var key any = []byte(secret)
	if m == jwt.SigningMethodNone {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}
