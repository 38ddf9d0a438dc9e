// Package gows is a Go client for the go-websocket HTTP API: every endpoint
// typed, errors as *Error values carrying the API code, retries of 10009
// (cluster unavailable) and 429 (rate limited, honouring Retry-After), batch,
// and verification of webhook signatures.
//
//	c := gows.New("http://127.0.0.1:7800", "my-system")
//	id, err := c.SendToClient(ctx, clientID, gows.Message{Data: map[string]any{"text": "hi"}})
//	if gows.IsCode(err, gows.CodeClientOffline) { ... }
package gows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// API error codes.
const (
	CodeInvalidRequest   = 10001
	CodeMissingSystemID  = 10002
	CodeUnknownSystem    = 10003
	CodeSystemExists     = 10004
	CodeUnauthorized     = 10005
	CodeClientOffline    = 10006
	CodeBodyTooLarge     = 10007
	CodeMethodNotAllowed = 10008
	CodeUnavailable      = 10009
	CodeRateLimited      = 10010
	CodeInternal         = 10011
	CodeOriginForbidden  = 10012
)

// Error is an error answer of the API.
type Error struct {
	Code       int    // API code, e.g. CodeClientOffline
	Msg        string // the API's message
	HTTPStatus int
	// RetryAfter is the server's Retry-After (429), 0 when absent.
	RetryAfter time.Duration
	Endpoint   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("gows %s: %d %s (HTTP %d)", e.Endpoint, e.Code, e.Msg, e.HTTPStatus)
}

// IsCode reports whether err is an *Error with code.
func IsCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Client calls one node (or a load balancer in front of a cluster) for one
// system. It is safe for concurrent use.
type Client struct {
	base     string
	systemID string
	token    string
	hc       *http.Client
	retries  int
	backoff  time.Duration
	maxWait  time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the API token (Authorization: Bearer).
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the HTTP client (default: 10 s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetries sets how many times a call answered 10009 or 429 is tried
// again (default 3; 0 disables retries), and the first backoff (default
// 100 ms, doubled each time, with jitter).
func WithRetries(n int, firstBackoff time.Duration) Option {
	return func(c *Client) { c.retries, c.backoff = n, firstBackoff }
}

// WithMaxRetryWait bounds one wait between tries, Retry-After included
// (default 30 s).
func WithMaxRetryWait(d time.Duration) Option { return func(c *Client) { c.maxWait = d } }

// New returns a client of baseURL (e.g. http://127.0.0.1:7800) for systemID.
func New(baseURL, systemID string, opts ...Option) *Client {
	c := &Client{
		base: strings.TrimRight(baseURL, "/"), systemID: systemID,
		hc: &http.Client{Timeout: 10 * time.Second}, retries: 3, backoff: 100 * time.Millisecond, maxWait: 30 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// SystemID is the system the client calls for.
func (c *Client) SystemID() string { return c.systemID }

type envelope struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

// Call POSTs body to endpoint and decodes the success data into out (nil:
// ignored). Answers 10009 and 429 are retried as configured.
func (c *Client) Call(ctx context.Context, endpoint string, body, out any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("gows %s: encode request: %w", endpoint, err)
	}
	backoff := c.backoff
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, endpoint, payload, out)
		var e *Error
		if err == nil || !errors.As(err, &e) || attempt >= c.retries ||
			(e.Code != CodeUnavailable && e.HTTPStatus != http.StatusTooManyRequests) {
			return err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if e.RetryAfter > 0 {
			wait = e.RetryAfter
		}
		wait = min(wait, c.maxWait)
		backoff *= 2
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, endpoint string, payload []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/websocket/"+endpoint, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("gows %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.systemID != "" && endpoint != "register" {
		req.Header.Set("systemId", c.systemID)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("gows %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("gows %s: read answer: %w", endpoint, err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return &Error{Code: CodeInternal, Msg: fmt.Sprintf("answer is not the API's JSON envelope: %.200s", raw),
			HTTPStatus: resp.StatusCode, Endpoint: endpoint}
	}
	if env.Code != 0 || resp.StatusCode != http.StatusOK {
		e := &Error{Code: env.Code, Msg: env.Msg, HTTPStatus: resp.StatusCode, Endpoint: endpoint}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("gows %s: decode data %.200s: %w", endpoint, env.Data, err)
	}
	return nil
}
