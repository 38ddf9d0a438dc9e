package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Small buffers: the tool holds ~19,000 connections per process.
const (
	wsReadBuffer  = 1024
	wsWriteBuffer = 256
	wsReadLimit   = 1 << 20
	setupTimeout  = 10 * time.Second
)

var writeBufPool = &sync.Pool{}

// frameBufPool holds read buffers, taken only while a frame is being read.
var frameBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// newDialers returns one dialer per source address (or one without a fixed
// source address).
func newDialers(srcs []string) ([]*websocket.Dialer, error) {
	mk := func(local net.Addr) *websocket.Dialer {
		nd := &net.Dialer{Timeout: setupTimeout, LocalAddr: local}
		return &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: setupTimeout,
			ReadBufferSize:   wsReadBuffer,
			WriteBufferSize:  wsWriteBuffer,
			WriteBufferPool:  writeBufPool,
			// WSBENCH_COMPRESS=1 offers permessage-deflate, as browsers do
			// (inherited by every load process).
			EnableCompression: os.Getenv("WSBENCH_COMPRESS") != "",
		}
	}
	if len(srcs) == 0 {
		return []*websocket.Dialer{mk(nil)}, nil
	}
	out := make([]*websocket.Dialer, 0, len(srcs))
	for _, s := range srcs {
		ip := net.ParseIP(s)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("bad source address %q", s)
		}
		out = append(out, mk(&net.TCPAddr{IP: ip}))
	}
	return out, nil
}

// wsURL is the WebSocket endpoint of a server base URL ("http://IP:PORT").
func wsURL(target, base, system, connectToken string) string {
	u := "ws" + strings.TrimPrefix(base, "http")
	if target == "centrifugo" {
		return u + "/connection/websocket"
	}
	q := url.Values{"systemId": {system}}
	if connectToken != "" {
		q.Set("token", connectToken)
	}
	return u + "/api/websocket/ws?" + q.Encode()
}

// dialGows connects and reads the welcome frame; it returns the clientId.
func dialGows(ctx context.Context, d *websocket.Dialer, u string) (*websocket.Conn, string, error) {
	c, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, "", fmt.Errorf("upgrade refused: HTTP %d", resp.StatusCode)
		}
		return nil, "", err
	}
	c.SetReadLimit(wsReadLimit)
	_ = c.SetReadDeadline(time.Now().Add(setupTimeout))
	_, msg, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("reading the welcome frame: %w", err)
	}
	var env struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			ClientID string `json:"clientId"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg, &env); err != nil || env.Code == nil {
		c.Close()
		return nil, "", fmt.Errorf("bad welcome frame %q", trimForErr(string(msg)))
	}
	if *env.Code != 0 {
		c.Close()
		return nil, "", fmt.Errorf("connect refused: code %d: %s", *env.Code, env.Msg)
	}
	if env.Data.ClientID == "" {
		c.Close()
		return nil, "", fmt.Errorf("welcome frame without clientId: %q", trimForErr(string(msg)))
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, env.Data.ClientID, nil
}

// dialCentrifugo connects, sends the connect command and, when channel is
// not empty, subscribes. It returns Centrifugo's client id.
func dialCentrifugo(ctx context.Context, d *websocket.Dialer, u, channel string) (*websocket.Conn, string, error) {
	c, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, "", fmt.Errorf("upgrade refused: HTTP %d", resp.StatusCode)
		}
		return nil, "", err
	}
	c.SetReadLimit(wsReadLimit)
	deadline := time.Now().Add(setupTimeout)
	_ = c.SetReadDeadline(deadline)
	_ = c.SetWriteDeadline(deadline)
	reply, err := centrifugoCall(c, 1, `{"id":1,"connect":{}}`)
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("centrifugo connect: %w", err)
	}
	var cr struct {
		Connect struct {
			Client string `json:"client"`
		} `json:"connect"`
	}
	_ = json.Unmarshal(reply, &cr)
	id := cr.Connect.Client
	if id == "" {
		id = "?"
	}
	if channel != "" {
		sub, _ := json.Marshal(map[string]any{"id": 2, "subscribe": map[string]string{"channel": channel}})
		if _, err := centrifugoCall(c, 2, string(sub)); err != nil {
			c.Close()
			return nil, "", fmt.Errorf("centrifugo subscribe %s: %w", channel, err)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	_ = c.SetWriteDeadline(time.Time{})
	return c, id, nil
}

// centrifugoCall writes one command and reads frames until the reply with
// the same id, answering server pings ({}) on the way.
func centrifugoCall(c *websocket.Conn, id int, cmd string) (json.RawMessage, error) {
	if err := c.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return nil, err
	}
	for range 100 {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return nil, err
		}
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if bytes.Equal(line, []byte("{}")) {
				if err := c.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
					return nil, err
				}
				continue
			}
			var r struct {
				ID    int `json:"id"`
				Error *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal(line, &r) != nil || r.ID != id {
				continue
			}
			if r.Error != nil {
				return nil, fmt.Errorf("error %d: %s", r.Error.Code, r.Error.Message)
			}
			return append(json.RawMessage(nil), line...), nil
		}
	}
	return nil, errors.New("no reply after 100 frames")
}

// readFrame reads the next data frame into a pooled buffer. The caller must
// give the buffer back with putFrame.
func readFrame(c *websocket.Conn) (*[]byte, error) {
	_, r, err := c.NextReader()
	if err != nil {
		return nil, err
	}
	bp := frameBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b[:0]
			frameBufPool.Put(bp)
			return nil, err
		}
	}
	*bp = b
	return bp, nil
}

func putFrame(bp *[]byte) {
	if cap(*bp) > 64<<10 {
		return // do not keep huge buffers around
	}
	*bp = (*bp)[:0]
	frameBufPool.Put(bp)
}

// closeGracefully sends a close frame, waits briefly for the server's close
// frame (so that the server side closes the TCP connection first), then
// closes. Used by connect-churn.
func closeGracefully(c *websocket.Conn, wait time.Duration) {
	deadline := time.Now().Add(wait)
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
	_ = c.SetReadDeadline(deadline)
	for range 1000 {
		if _, _, err := c.NextReader(); err != nil {
			break
		}
	}
	c.Close()
}
