package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/webhook"
)

// recorder is a Service that records what the handlers pass on.
type recorder struct {
	last   string
	msg    *define.Message
	online bool
}

func (r *recorder) RegisterSystem(_ context.Context, id, url string, events []string) (string, error) {
	if id == "taken" {
		return "", define.ErrSystemExists
	}
	r.last = "register " + id + " " + url + " " + strings.Join(events, ",")
	return "secret", nil
}
func (r *recorder) UpdateSystem(_ context.Context, id string, u *webhook.Update) (*webhook.Info, error) {
	info := &webhook.Info{SystemID: id, WebhookEvents: []string{}}
	if u.WebhookURL != nil {
		info.WebhookURL = *u.WebhookURL
	}
	if u.RotateSecret {
		info.WebhookSecret = "new"
	}
	return info, nil
}
func (r *recorder) GetSystem(_ context.Context, id string) (*webhook.Info, error) {
	return &webhook.Info{SystemID: id, WebhookEvents: []string{}}, nil
}
func (r *recorder) SendToClient(_ context.Context, s, id string, m *define.Message) (string, error) {
	if id == "gone" {
		return "", define.ErrClientOffline
	}
	if id == "boom" {
		return "", errors.New("disk on fire")
	}
	r.last, r.msg = "send "+s+" "+id, m
	return "mid", nil
}
func (r *recorder) SendToClients(_ context.Context, s string, ids []string, m *define.Message) (*define.SendResult, error) {
	r.msg = m
	return &define.SendResult{MessageID: "mid", Delivered: len(ids), Offline: []string{}}, nil
}
func (r *recorder) BindToGroup(_ context.Context, s, id, g, u, e string) error {
	r.last = strings.Join([]string{"bind", s, id, g, u, e}, " ")
	return nil
}
func (r *recorder) UnbindFromGroup(_ context.Context, s, id, g string) error { return nil }
func (r *recorder) SendToGroup(_ context.Context, s, g string, m *define.Message) (*define.BroadcastResult, error) {
	r.msg = m
	return &define.BroadcastResult{MessageID: "mid"}, nil
}
func (r *recorder) SendToSystem(_ context.Context, s string, m *define.Message) (*define.BroadcastResult, error) {
	r.msg = m
	return &define.BroadcastResult{MessageID: "mid"}, nil
}
func (r *recorder) OnlineList(_ context.Context, s, g string) (*define.OnlineList, error) {
	return &define.OnlineList{List: []string{}}, nil
}
func (r *recorder) IsOnline(_ context.Context, s, id string) (bool, error) { return r.online, nil }
func (r *recorder) Cork(ctx context.Context) (context.Context, func())     { return ctx, func() {} }
func (r *recorder) CloseClient(_ context.Context, s, id string) error      { return nil }

func engine(svc Service) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	h := New(svc, zap.NewNop())
	for _, ep := range h.Endpoints() {
		e.POST("/"+ep.Name, func(c *gin.Context) { c.Set(KeySystemID, "s1") }, ep.Handler)
	}
	return e
}

func call(e *gin.Engine, endpoint, body string) (int, define.Response, string) {
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/"+endpoint, strings.NewReader(body))
	e.ServeHTTP(w, req)
	var r define.Response
	_ = json.Unmarshal(w.Body.Bytes(), &r)
	return w.Code, r, w.Body.String()
}

func TestValidation(t *testing.T) {
	e := engine(&recorder{})
	cases := []struct {
		endpoint, body string
		status, code   int
		msgHas         string
	}{
		{"send_to_client", ``, 400, 10001, "empty"},
		{"send_to_client", `{`, 400, 10001, "malformed"},
		{"send_to_client", `[]`, 400, 10001, "object"},
		{"send_to_client", `{"clientId":""}`, 400, 10001, "clientId"},
		{"send_to_client", `{"clientId":5}`, 400, 10001, "clientId"},
		{"send_to_client", `{"clientId":"a","code":"x"}`, 400, 10001, "code"},
		{"send_to_client", `{"clientId":"a","code":1.5}`, 400, 10001, "code"},
		{"send_to_client", `{"clientId":"a","msg":{}}`, 400, 10001, "msg"},
		{"send_to_client", `{"clientId":"a"} trailing`, 400, 10001, "malformed"},
		{"send_to_client", `{"clientId":"gone"}`, 404, 10006, "not online"},
		{"send_to_client", `{"clientId":"boom"}`, 500, 10011, "request id"},
		{"send_to_clients", `{"clientIds":[]}`, 400, 10001, "clientIds"},
		{"send_to_clients", `{"clientIds":"a"}`, 400, 10001, "clientIds"},
		{"send_to_clients", `{"clientIds":["a",""]}`, 400, 10001, "clientIds"},
		{"bind_to_group", `{"clientId":"a"}`, 400, 10001, "groupName"},
		{"bind_to_group", `{"clientId":"a","groupName":"` + strings.Repeat("g", 129) + `"}`, 400, 10001, "groupName"},
		{"bind_to_group", `{"clientId":"a","groupName":"a\u0007b"}`, 400, 10001, "groupName"},
		{"bind_to_group", `{"clientId":"a","groupName":"g","userId":1}`, 400, 10001, "userId"},
		{"send_to_group", `{"groupName":""}`, 400, 10001, "groupName"},
		{"register", `{}`, 400, 10002, "systemId"},
		{"register", `{"systemId":"taken"}`, 409, 10004, "already"},
		{"register", `{"systemId":"a\nb"}`, 400, 10001, "systemId"},
		{"is_online", `{}`, 400, 10001, "clientId"},
		{"get_online_list", `{"groupName":7}`, 400, 10001, "groupName"},
	}
	for _, c := range cases {
		status, r, raw := call(e, c.endpoint, c.body)
		if status != c.status || r.Code != c.code || !strings.Contains(r.Msg, c.msgHas) {
			t.Errorf("%s %s: got %d %s, want %d code %d msg containing %q", c.endpoint, c.body, status, raw, c.status, c.code, c.msgHas)
		}
		if strings.Contains(raw, "disk on fire") {
			t.Errorf("internal error leaked: %s", raw)
		}
	}
}

func TestDataPassedAsIs(t *testing.T) {
	rec := &recorder{}
	e := engine(rec)
	for _, data := range []string{`"s"`, `12`, `{"a": [1, 2]}`, `null`, `[]`} {
		status, _, raw := call(e, "send_to_client", `{"clientId":"a","data":`+data+`}`)
		if status != 200 || string(rec.msg.Data) != data {
			t.Fatalf("data %s: status %d %s, passed %q", data, status, raw, rec.msg.Data)
		}
	}
	if status, r, _ := call(e, "get_online_list", ``); status != 200 || r.Code != 0 {
		t.Fatalf("empty body on get_online_list: %d %+v", status, r)
	}
	call(e, "bind_to_group", `{"clientId":"c","groupName":"g","userId":"u","extend":"x"}`)
	if rec.last != "bind s1 c g u x" {
		t.Fatalf("bind passed %q", rec.last)
	}
}

func FuzzDecodeRequests(f *testing.F) {
	seeds := []string{``, `{}`, `{"clientId":"a","data":{"x":1}}`, `{"clientIds":["a","b"],"code":3}`,
		`{"groupName":"g","msg":"m","sendUserId":"u"}`, `{"systemId":"s"}`, `{"data":"\ud800"}`, `{"code":1e400}`, "\xff{}"}
	names := []string{}
	for _, ep := range New(&recorder{}, zap.NewNop()).Endpoints() {
		names = append(names, ep.Name)
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	e := engine(&recorder{})
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		status, r, raw := call(e, names[int(which)%len(names)], body)
		if raw == "" || (status != 200 && r.Code == 0) {
			t.Fatalf("status %d body %q", status, raw)
		}
		if status == 500 && !strings.Contains(body, "boom") {
			t.Fatalf("500 for %q: %s", body, raw)
		}
		if status != define.HTTPStatus(r.Code) {
			t.Fatalf("status %d does not match code %d", status, r.Code)
		}
	})
}
