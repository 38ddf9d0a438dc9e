package servers

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenLeeway is the clock skew tolerated on exp and nbf of connect tokens.
const TokenLeeway = 30 * time.Second

// connectClaims are the claims of a connect token.
type connectClaims struct {
	SystemID string `json:"systemId"`
	UserID   string `json:"userId,omitempty"`
	jwt.RegisteredClaims
}

// TokenAuthenticator returns a ConnectPolicy.Authenticate that requires
// ?token=<JWT HS256 signed with secret> whose systemId claim matches the
// query and which carries exp (nbf honoured when present).
func TokenAuthenticator(secret []byte) func(r *http.Request, systemID string) (string, error) {
	parser := NewConnectParser()
	key := func(*jwt.Token) (any, error) { return secret, nil }
	return func(r *http.Request, systemID string) (string, error) {
		return VerifyConnectToken(parser, key, r.URL.Query().Get("token"), systemID)
	}
}

// VerifyConnectToken checks one token string; exported for fuzzing.
func VerifyConnectToken(p *jwt.Parser, key jwt.Keyfunc, token, systemID string) (string, error) {
	if token == "" {
		return "", errors.New("missing connect token (token query parameter)")
	}
	if len(token) > 4096 {
		return "", errors.New("connect token too long")
	}
	var c connectClaims
	if _, err := p.ParseWithClaims(token, &c, key); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return "", errors.New("connect token expired")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return "", errors.New("connect token has no exp claim")
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return "", errors.New("connect token not valid yet")
		}
		return "", errors.New("invalid connect token")
	}
	if c.SystemID != systemID {
		return "", fmt.Errorf("connect token is for another systemId")
	}
	if len(c.UserID) > 256 {
		return "", errors.New("connect token userId too long")
	}
	return c.UserID, nil
}

// NewConnectParser is the parser TokenAuthenticator uses (for tests and fuzzing).
func NewConnectParser() *jwt.Parser {
	return jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithLeeway(TokenLeeway))
}
