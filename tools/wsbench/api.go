package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// API calls the server's HTTP API: go-websocket's /api/websocket/* or
// Centrifugo's /api/publish.
type API struct {
	hc     *http.Client
	target string
	system string
	token  string
	apiKey string
	ack    string // added to send_to_client bodies (-ack); the answer must say acked
}

func newAPI(target, system, token, apiKey string, conns int) *API {
	tr := &http.Transport{
		Proxy:               nil, // loopback only: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &API{
		hc:     &http.Client{Transport: tr, Timeout: 15 * time.Second},
		target: target, system: system, token: token, apiKey: apiKey,
	}
}

func (a *API) close() { a.hc.CloseIdleConnections() }

// apiError is a non-success API answer.
type apiError struct {
	HTTP int
	Code int // the envelope's code (0 if none could be parsed)
	Msg  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d, code %d: %s", e.HTTP, e.Code, e.Msg)
}

// errKey is the key errors are tallied under in reports.
func errKey(err error) string {
	if err == errNotAcked {
		return "not acked"
	}
	if ae, ok := err.(*apiError); ok {
		return fmt.Sprintf("api code %d (HTTP %d)", ae.Code, ae.HTTP)
	}
	return "transport error"
}

type envelope struct {
	Code *int            `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

func (a *API) post(ctx context.Context, url string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// gows calls /api/websocket/<name> and returns data of a code-0 answer.
func (a *API) gows(ctx context.Context, base, name string, body []byte) (json.RawMessage, error) {
	hdr := map[string]string{}
	if name != "register" {
		hdr["systemId"] = a.system
	}
	if a.token != "" {
		hdr["Authorization"] = "Bearer " + a.token
	}
	resp, b, err := a.post(ctx, base+"/api/websocket/"+name, body, hdr)
	if err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil || env.Code == nil {
		return nil, &apiError{HTTP: resp.StatusCode, Msg: "not a JSON envelope: " + trimForErr(string(b))}
	}
	if *env.Code != 0 || resp.StatusCode != http.StatusOK {
		return nil, &apiError{HTTP: resp.StatusCode, Code: *env.Code, Msg: env.Msg}
	}
	return env.Data, nil
}

// Register registers the system; "already registered" (10004) is success.
func (a *API) Register(ctx context.Context, base string) error {
	body, _ := json.Marshal(map[string]string{"systemId": a.system})
	_, err := a.gows(ctx, base, "register", body)
	if ae, ok := err.(*apiError); ok && ae.Code == 10004 {
		return nil
	}
	return err
}

// Bind puts a client into a group.
func (a *API) Bind(ctx context.Context, base, clientID, group string) error {
	body, _ := json.Marshal(map[string]string{"clientId": clientID, "groupName": group})
	_, err := a.gows(ctx, base, "bind_to_group", body)
	return err
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

type recipientsData struct {
	Recipients int `json:"recipients"`
}

// SendToGroup publishes data (raw JSON) to a group; it returns recipients.
func (a *API) SendToGroup(ctx context.Context, base, group string, data []byte) (int, error) {
	body := make([]byte, 0, len(data)+64)
	body = append(body, `{"groupName":`...)
	body = appendJSONString(body, group)
	body = append(body, `,"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	d, err := a.gows(ctx, base, "send_to_group", body)
	if err != nil {
		return 0, err
	}
	var r recipientsData
	_ = json.Unmarshal(d, &r)
	return r.Recipients, nil
}

// SendToSystem publishes data to every client of the system.
func (a *API) SendToSystem(ctx context.Context, base string, data []byte) (int, error) {
	body := make([]byte, 0, len(data)+16)
	body = append(body, `{"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	d, err := a.gows(ctx, base, "send_to_system", body)
	if err != nil {
		return 0, err
	}
	var r recipientsData
	_ = json.Unmarshal(d, &r)
	return r.Recipients, nil
}

// SendToClient pushes data to one client.
func (a *API) SendToClient(ctx context.Context, base, clientID string, data []byte) error {
	body := make([]byte, 0, len(data)+len(clientID)+32)
	body = append(body, `{"clientId":`...)
	body = appendJSONString(body, clientID)
	body = append(body, `,"data":`...)
	body = append(body, data...)
	body = append(body, a.ack...)
	body = append(body, '}')
	d, err := a.gows(ctx, base, "send_to_client", body)
	if err == nil && a.ack != "" {
		err = checkAcked(d)
	}
	return err
}

// Publish publishes data to a Centrifugo channel.
func (a *API) Publish(ctx context.Context, base, channel string, data []byte) error {
	body := make([]byte, 0, len(data)+len(channel)+32)
	body = append(body, `{"channel":`...)
	body = appendJSONString(body, channel)
	body = append(body, `,"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	resp, b, err := a.post(ctx, base+"/api/publish", body, map[string]string{"X-API-Key": a.apiKey})
	if err != nil {
		return err
	}
	var r struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return &apiError{HTTP: resp.StatusCode, Msg: "not JSON: " + trimForErr(string(b))}
	}
	if r.Error != nil {
		return &apiError{HTTP: resp.StatusCode, Code: r.Error.Code, Msg: r.Error.Message}
	}
	if resp.StatusCode != http.StatusOK {
		return &apiError{HTTP: resp.StatusCode, Msg: trimForErr(string(b))}
	}
	return nil
}

// Push sends one unicast message to client idx: send_to_client on gows, a
// publication to the client's own channel on Centrifugo.
func (a *API) Push(ctx context.Context, base string, idx int, clientID string, data []byte) error {
	if a.target == "centrifugo" {
		return a.Publish(ctx, base, unicastChannel(idx), data)
	}
	return a.SendToClient(ctx, base, clientID, data)
}

// unicastChannel is the personal Centrifugo channel of client idx.
func unicastChannel(idx int) string { return "u" + strconv.Itoa(idx) }
