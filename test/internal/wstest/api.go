package wstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The API's path sets: the main one and the one of the original API.
const (
	Prefix       = "/api/websocket/"
	LegacyPrefix = "/api/"
)

// Endpoints are the POST endpoints every node has had from the start.
var Endpoints = []string{
	"register", "send_to_client", "send_to_clients", "bind_to_group", "unbind_from_group",
	"send_to_group", "send_to_system", "get_online_list", "is_online", "close_client",
}

// StatusOfCode is the HTTP status of each envelope code.
var StatusOfCode = map[int]int{
	0:     200,
	10001: 400, 10002: 400, 10003: 404, 10004: 409, 10005: 401, 10006: 404,
	10007: 413, 10008: 405, 10009: 503, 10010: 429, 10011: 500, 10012: 403,
}

// JSONContentType is the Content-Type of every API answer.
const JSONContentType = "application/json; charset=utf-8"

// Resp is one HTTP answer. Code, Msg and Data are set when the body is an
// envelope.
type Resp struct {
	Method, Path string
	Status       int
	Header       http.Header
	ContentType  string
	Body         []byte
	Code         int
	Msg          string
	Data         json.RawMessage
	Took         time.Duration
}

func (r *Resp) String() string {
	b := r.Body
	if len(b) > 300 {
		b = append(append([]byte{}, b[:300]...), "..."...)
	}
	return fmt.Sprintf("%s %s -> HTTP %d %q %s", r.Method, r.Path, r.Status, r.ContentType, b)
}

// Decode decodes Data into v or fails t.
func (r *Resp) Decode(t testing.TB, v any) {
	t.Helper()
	Decode(t, r.Data, v)
}

// Decode decodes raw into v or fails t.
func Decode(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decoding %s into %T: %v", raw, v, err)
	}
}

// parse fills Code, Msg and Data from an envelope body; false when the body
// is not one.
func (r *Resp) parse() bool {
	var env struct {
		Code int             `json:"code"`
		Msg  string          `json:"msg"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(r.Body, &env) != nil {
		return false
	}
	r.Code, r.Msg, r.Data = env.Code, env.Msg, env.Data
	return true
}

// CheckEnvelope checks what every API answer must be: the JSON Content-Type,
// never a 5xx, a body that is an object {code, msg, data} whose code is in
// StatusOfCode and goes with the HTTP status (except the documented 404
// with 10001 "no such endpoint" of an unknown path), and a msg on every
// error; and that it matches docs/openapi.yaml (CheckSpec). It sets Code,
// Msg and Data.
func CheckEnvelope(r *Resp) error {
	var problems []string
	if r.ContentType == "" && r.Header != nil {
		r.ContentType = r.Header.Get("Content-Type")
	}
	if r.ContentType != JSONContentType {
		problems = append(problems, fmt.Sprintf("Content-Type %q, want %q", r.ContentType, JSONContentType))
	}
	if r.Status >= 500 {
		problems = append(problems, fmt.Sprintf("HTTP status %d (5xx)", r.Status))
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		problems = append(problems, "empty body")
	} else {
		var env map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &env); err != nil {
			problems = append(problems, "body is not a JSON object: "+err.Error())
		} else {
			for _, k := range []string{"code", "msg", "data"} {
				if _, ok := env[k]; !ok {
					problems = append(problems, "envelope has no "+k)
				}
			}
			if err := json.Unmarshal(env["code"], &r.Code); err != nil {
				problems = append(problems, "code is not an integer: "+string(env["code"]))
			}
			if err := json.Unmarshal(env["msg"], &r.Msg); err != nil {
				problems = append(problems, "msg is not a string: "+string(env["msg"]))
			}
			r.Data = env["data"]
			unknownPath := r.Code == 10001 && r.Status == 404 && strings.HasPrefix(r.Msg, "no such endpoint")
			if want, ok := StatusOfCode[r.Code]; !ok {
				problems = append(problems, fmt.Sprintf("code %d is not a documented code", r.Code))
			} else if want != r.Status && !unknownPath {
				problems = append(problems, fmt.Sprintf("code %d goes with HTTP %d, got HTTP %d", r.Code, want, r.Status))
			}
			if r.Code != 0 && strings.TrimSpace(r.Msg) == "" {
				problems = append(problems, "error without a msg")
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", r, strings.Join(problems, "; "))
	}
	return CheckSpec(r)
}

// Body is the request body of v: nil as {}, a string or []byte as is,
// anything else JSON-encoded.
func Body(v any) []byte {
	switch b := v.(type) {
	case nil:
		return []byte("{}")
	case string:
		return []byte(b)
	case []byte:
		return b
	}
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return out
}

// API calls one node's HTTP API (or nginx in front of nodes).
type API struct {
	URL    string       // http://host:port
	Client *http.Client // default: a client with a 15 s timeout
	Token  string       // sent as "Authorization: Bearer" by Post ("" none)
}

var defaultClient = &http.Client{Timeout: 15 * time.Second}

func (a *API) client() *http.Client {
	if a.Client != nil {
		return a.Client
	}
	return defaultClient
}

// Do sends one request to a.URL+path with exactly the headers h (names as
// given, case kept) and reads the answer (16 MiB at most). It parses an
// envelope when there is one and checks nothing; any goroutine may call it.
func (a *API) Do(method, path string, h http.Header, body []byte) (*Resp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return a.DoReader(method, path, h, rd)
}

// DoReader is Do with the body read from rd (nil: none); a reader of
// unknown length is sent chunked.
func (a *API) DoReader(method, path string, h http.Header, rd io.Reader) (*Resp, error) {
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := a.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	r := &Resp{Method: method, Path: req.URL.RequestURI(), Status: resp.StatusCode, Header: resp.Header,
		ContentType: resp.Header.Get("Content-Type"), Body: b, Took: time.Since(start)}
	r.parse()
	return r, nil
}

// Headers are the usual API headers: JSON, systemId (unless "") and the
// bearer token (unless a.Token is "").
func (a *API) Headers(systemID string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if systemID != "" {
		h["systemId"] = []string{systemID}
	}
	if a.Token != "" {
		h["Authorization"] = []string{"Bearer " + a.Token}
	}
	return h
}

// Post POSTs body (see Body) to Prefix+endpoint with the usual headers. The
// answer must be an envelope; it is not checked otherwise.
func (a *API) Post(endpoint, systemID string, body any) (*Resp, error) {
	return a.PostTo(Prefix+endpoint, systemID, body)
}

// PostTo is Post to any path (the legacy prefix, say).
func (a *API) PostTo(path, systemID string, body any) (*Resp, error) {
	r, err := a.Do(http.MethodPost, path, a.Headers(systemID), Body(body))
	if err != nil {
		return nil, err
	}
	if !r.parse() {
		return r, fmt.Errorf("%s: not a JSON envelope", r)
	}
	return r, nil
}

// Call is Post that fails t on a transport error or a body that is not an
// envelope.
func (a *API) Call(t testing.TB, endpoint, systemID string, body any) *Resp {
	t.Helper()
	r, err := a.Post(endpoint, systemID, body)
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	return r
}

// OK is Call that requires code 0 and HTTP 200, and returns data.
func (a *API) OK(t testing.TB, endpoint, systemID string, body any) json.RawMessage {
	t.Helper()
	r := a.Call(t, endpoint, systemID, body)
	if r.Code != 0 || r.Status != http.StatusOK {
		t.Fatalf("%s: want code 0 / HTTP 200", r)
	}
	return r.Data
}

// Get GETs a.URL+path and returns the status and body; transport errors
// fail t.
func (a *API) Get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := a.client().Get(a.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}
