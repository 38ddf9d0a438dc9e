package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// SPEC 2: register answers {"systemId"}; a second register of the same id is
// 10004/409; systemId must be 1-128 characters without control characters.
// Both path sets.
func TestRegister(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)

	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		sys := "reg" + strings.Trim(prefix, "/")
		sys = strings.ReplaceAll(sys, "/", "-")
		r := n.postAt(t, prefix, "register", "", map[string]any{"systemId": sys})
		if r.Code != 0 || r.Status != 200 || r.Msg != "success" {
			t.Fatalf("%s: want code 0, msg success", r)
		}
		if got, want := strings.Join(strings.Fields(string(r.Data)), ""), `{"systemId":`+jsonStr(sys)+`}`; got != want {
			t.Errorf("%s %s: data %s, want %s", prefix, "register", r.Data, want)
		}
		n.failAt(t, prefix, "register", "", map[string]any{"systemId": sys}, 10004)
	}
	// Registered on one path set, known on the other.
	n.failAt(t, legacyPrefix, "register", "", map[string]any{"systemId": "regapi-websocket"}, 10004)

	// Boundaries: 128 characters (also 128 multi-byte characters) are fine.
	n.register(t, strings.Repeat("s", 128))
	n.register(t, strings.Repeat("é", 128))
	n.register(t, "with space and ünïcödé 中文")

	for name, body := range map[string]string{
		"missing": `{}`,
		"empty":   `{"systemId":""}`,
		"null":    `{"systemId":null}`,
	} {
		r := n.post(t, "register", "", body)
		if (r.Code != 10001 && r.Code != 10002) || r.Status != 400 {
			t.Errorf("register %s (%s): %s: want 10001 or 10002 / HTTP 400", name, body, r)
		}
		if !strings.Contains(strings.ToLower(r.Msg), "systemid") {
			t.Errorf("register %s: msg %q does not name systemId", name, r.Msg)
		}
	}
	for name, id := range map[string]string{
		"129 chars":  strings.Repeat("s", 129),
		"129 runes":  strings.Repeat("é", 129),
		"NUL":        "a\x00b",
		"newline":    "a\nb",
		"tab":        "a\tb",
		"unit sep":   "a\x1fb",
		"DEL":        "a\x7fb",
		"C1 control": "a\u0085b",
	} {
		r := n.fail(t, "register", "", map[string]any{"systemId": id}, 10001)
		if !strings.Contains(strings.ToLower(r.Msg), "systemid") {
			t.Errorf("register %s: msg %q does not name systemId", name, r.Msg)
		}
	}
	// Concurrent registers of one id: exactly one wins.
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := n.do(http.MethodPost, mainPrefix+"register", nil, []byte(`{"systemId":"contended"}`))
			if err != nil {
				codes <- -1
				return
			}
			codes <- r.Code
		}()
	}
	wg.Wait()
	close(codes)
	wins, dups := 0, 0
	for c := range codes {
		switch c {
		case 0:
			wins++
		case 10004:
			dups++
		}
	}
	if wins != 1 || dups != 19 {
		t.Errorf("20 concurrent registers of one id: %d succeeded, %d got 10004; want 1 and 19", wins, dups)
	}
	// A rejected id was not registered by accident.
	n.register(t, strings.Repeat("s", 127)+"x")
}

// SPEC 2/5: every endpoint but register needs the systemId header: missing is
// 10002/400, unregistered 10003/404; header names are case-insensitive.
func TestSystemIDHeader(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "hdr")
	c := n.dial(t, "hdr")

	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for _, ep := range apiEndpoints {
			if ep == "register" {
				continue
			}
			body := validBody(ep, c.id, "room")
			n.failAt(t, prefix, ep, "", body, 10002)
			n.failAt(t, prefix, ep, "nosuchsystem", body, 10003)
			r, err := n.do(http.MethodPost, prefix+ep, map[string]string{"systemId": ""}, bodyBytes(body))
			if err != nil {
				t.Error(err)
			} else if r.Code != 10002 {
				t.Errorf("%s with an empty systemId header: want 10002", r)
			}
		}
	}
	// Header name case does not matter.
	for _, h := range []string{"systemid", "SYSTEMID", "SystemId", "systemId"} {
		r, err := n.do(http.MethodPost, mainPrefix+"is_online", map[string]string{h: "hdr"}, bodyBytes(map[string]any{"clientId": c.id}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != 0 || !strings.Contains(string(r.Data), "true") {
			t.Errorf("header %q: %s: want code 0, online true", h, r)
		}
	}
}

// validBody is a correct request body for endpoint ep.
func validBody(ep, clientID, group string) map[string]any {
	switch ep {
	case "register":
		return map[string]any{"systemId": "valid-body-system"}
	case "send_to_client":
		return map[string]any{"clientId": clientID, "sendUserId": "u", "code": 1, "msg": "m", "data": "d"}
	case "send_to_clients":
		return map[string]any{"clientIds": []string{clientID}, "sendUserId": "u", "code": 1, "msg": "m", "data": "d"}
	case "bind_to_group":
		return map[string]any{"clientId": clientID, "groupName": group, "sendUserId": "u", "userId": "x", "extend": "e"}
	case "unbind_from_group":
		return map[string]any{"clientId": clientID, "groupName": group}
	case "send_to_group":
		return map[string]any{"groupName": group, "sendUserId": "u", "code": 1, "msg": "m", "data": "d"}
	case "send_to_system":
		return map[string]any{"sendUserId": "u", "code": 1, "msg": "m", "data": "d"}
	case "get_online_list":
		return map[string]any{"groupName": group}
	case "is_online", "close_client":
		return map[string]any{"clientId": clientID}
	}
	panic("unknown endpoint " + ep)
}

// with returns a copy of body with key set to the raw JSON value (or removed
// when raw is "").
func with(body map[string]any, key, raw string) string {
	m := map[string]json.RawMessage{}
	for k, v := range body {
		b, _ := json.Marshal(v)
		m[k] = b
	}
	if raw == "" {
		delete(m, key)
	} else {
		m[key] = json.RawMessage(raw)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Decision: an unknown path under /api/websocket/ is 404 with code 10001.
func TestUnknownPath(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "u")
	for _, p := range []string{"/api/websocket/nope", "/api/websocket/send_to_client/extra", "/api/websocket/SEND_TO_CLIENT", "/api/websocket/"} {
		for _, m := range []string{http.MethodPost, http.MethodGet} {
			// (404 with 10001 is this decision's pairing, not the table's.)
			r, err := n.rawRequest(m, p, map[string]string{"systemId": "u"}, []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			var env struct {
				Code *int    `json:"code"`
				Msg  *string `json:"msg"`
			}
			if e := json.Unmarshal(r.Body, &env); e != nil || env.Code == nil || env.Msg == nil {
				t.Errorf("%s: not a JSON envelope", r)
				continue
			}
			if r.Status != 404 || *env.Code != 10001 || r.ContentType != jsonContentType || *env.Msg == "" {
				t.Errorf("%s: want HTTP 404, %s, code 10001 and a msg", r, jsonContentType)
			}
		}
	}
}

// Decision: another method on a POST endpoint is 405 with code 10008, on both
// path sets.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "m")
	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for _, ep := range apiEndpoints {
			for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				var body []byte
				if m != http.MethodGet {
					body = []byte(`{}`)
				}
				r, err := n.do(m, prefix+ep, map[string]string{"systemId": "m"}, body)
				if r == nil {
					t.Fatal(err)
				}
				if err != nil {
					t.Error(err)
				}
				if r.Status != 405 || r.Code != 10008 {
					t.Errorf("%s: want HTTP 405 / code 10008", r)
				}
			}
		}
	}
}

// SPEC 3 + decision: a plain HTTP GET (no upgrade) on the ws endpoint is a
// JSON 400 with a non-zero code, on both paths.
func TestWSPlainGET(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "p")
	for _, p := range []string{mainWSPath, legacyWSPath} {
		for _, q := range []string{"?systemId=p", "", "?systemId=unknown"} {
			r, err := n.do(http.MethodGet, p+q, nil, nil)
			if r == nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Error(err)
			}
			if r.Status != 400 || r.Code == 0 {
				t.Errorf("%s: want HTTP 400 with a non-zero code", r)
			}
		}
	}
}

// SPEC 2/5: malformed JSON is 10001/400 on every endpoint and path set.
func TestMalformedJSON(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "mj")
	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for _, ep := range apiEndpoints {
			for _, body := range []string{`{`, `{"clientId":}`, `{"a" 1}`, `not json`, `{"groupName":"g",}`, "{\"x\":\"\xff\"", `{}}`} {
				n.failAt(t, prefix, ep, "mj", body, 10001)
			}
		}
	}
}

// SPEC 2: a wrong JSON type is 10001 and msg names the field.
func TestWrongTypes(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "wt")
	c := n.dial(t, "wt")
	cases := map[string][]string{ // endpoint -> "field=raw value"
		"register":          {"systemId=5", "systemId=[]"},
		"send_to_client":    {"clientId=5", "sendUserId=5", "code=\"x\"", "code=1.5", "code=true", "msg=5", "msg={}"},
		"send_to_clients":   {"clientIds=\"x\"", "clientIds=[1]", "clientIds={}", "sendUserId=true", "code=\"x\"", "msg=[]"},
		"bind_to_group":     {"clientId=[]", "groupName=5", "sendUserId=5", "userId=5", "extend={}"},
		"unbind_from_group": {"clientId=5", "groupName=true"},
		"send_to_group":     {"groupName=5", "sendUserId=5", "code=\"x\"", "msg=5"},
		"send_to_system":    {"sendUserId=1", "code=\"x\"", "msg=false"},
		"get_online_list":   {"groupName=5"},
		"is_online":         {"clientId=5"},
		"close_client":      {"clientId=5"},
	}
	for ep, list := range cases {
		for _, fv := range list {
			field, raw, _ := strings.Cut(fv, "=")
			body := with(validBody(ep, c.id, "room"), field, raw)
			sys := "wt"
			if ep == "register" {
				sys = ""
			}
			r := n.fail(t, ep, sys, body, 10001)
			if !strings.Contains(strings.ToLower(r.Msg), strings.ToLower(field)) {
				t.Errorf("%s %s: msg %q does not name the field %s", ep, body, r.Msg, field)
			}
		}
	}
	// None of those requests closed or moved the client.
	if !n.isOnline(t, "wt", c.id) {
		t.Errorf("client went offline")
	}
}

// SPEC 2: a missing or empty required field is 10001 and msg names it.
func TestMissingRequiredFields(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "mr")
	c := n.dial(t, "mr")
	required := map[string][]string{
		"send_to_client":    {"clientId"},
		"send_to_clients":   {"clientIds"},
		"bind_to_group":     {"clientId", "groupName"},
		"unbind_from_group": {"clientId", "groupName"},
		"send_to_group":     {"groupName"},
		"is_online":         {"clientId"},
		"close_client":      {"clientId"},
	}
	for ep, fields := range required {
		for _, field := range fields {
			empty := `""`
			if field == "clientIds" {
				empty = `[]`
			}
			for _, raw := range []string{"", empty, "null"} {
				body := with(validBody(ep, c.id, "room"), field, raw)
				for _, prefix := range []string{mainPrefix, legacyPrefix} {
					r := n.failAt(t, prefix, ep, "mr", body, 10001)
					if !strings.Contains(strings.ToLower(r.Msg), strings.ToLower(field)) {
						t.Errorf("%s%s %s: msg %q does not name %s", prefix, ep, body, r.Msg, field)
					}
				}
			}
		}
	}
	if !n.isOnline(t, "mr", c.id) {
		t.Errorf("client went offline")
	}
}

// SPEC 2: groupName is 1-128 characters without control characters.
func TestGroupNameRules(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "gn")
	c := n.dial(t, "gn")
	bad := map[string]string{
		"129 chars": strings.Repeat("g", 129),
		"129 runes": strings.Repeat("é", 129),
		"NUL":       "a\x00b",
		"newline":   "a\nb",
		"ESC":       "a\x1bb",
		"DEL":       "a\x7fb",
	}
	for name, g := range bad {
		for _, ep := range []string{"bind_to_group", "unbind_from_group", "send_to_group", "get_online_list"} {
			r := n.fail(t, ep, "gn", validBody(ep, c.id, g), 10001)
			if !strings.Contains(strings.ToLower(r.Msg), "groupname") {
				t.Errorf("%s with groupName %s: msg %q does not name groupName", ep, name, r.Msg)
			}
		}
	}
	// Boundaries that are valid.
	for _, g := range []string{strings.Repeat("g", 128), strings.Repeat("é", 128), "x", "room with spaces/and:punct 中文"} {
		n.bind(t, "gn", c.id, g, "", "")
		if _, list := n.onlineList(t, "gn", g); !sameSet(list, []string{c.id}) {
			t.Errorf("group %q lists %v, want [%s]", g, list, c.id)
		}
		if _, rec := n.sendToGroup(t, "gn", g, `1`); rec != 1 {
			t.Errorf("send_to_group %q: recipients %d, want 1", g, rec)
		}
	}
}

// SPEC 2: send_to_client, close_client, bind_to_group, unbind_from_group on an
// id that is not online (unknown, closed, tampered, another system's) is
// 10006/404, and is_online is false for it (also for malformed ids).
func TestClientNotOnline(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "na")
	n.register(t, "nb")
	a := n.dial(t, "na")
	b := n.dial(t, "nb")
	gone := n.dial(t, "na")
	gone.close()
	n.waitOffline(t, "na", gone.id, 5*time.Second)

	tampered := []byte(a.id)
	last := len(tampered) - 1
	if tampered[last] == 'A' {
		tampered[last] = 'B'
	} else {
		tampered[last] = 'A'
	}
	first := []byte(a.id)
	if first[0] == 'z' {
		first[0] = 'y'
	} else {
		first[0] = 'z'
	}
	ids := map[string]string{
		"unknown":         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"closed":          gone.id,
		"tampered last":   string(tampered),
		"tampered first":  string(first),
		"truncated":       a.id[:len(a.id)-1],
		"extended":        a.id + "A",
		"another system":  b.id,
		"path traversal":  "../../../etc/passwd",
		"address in id":   "127.0.0.1:22",
		"long":            strings.Repeat("A", 1000),
		"not url-safe":    "a b+c/d=",
		"unicode":         "ünïcödé",
		"control":         "a\x01b",
		"own id upper":    strings.ToUpper(a.id),
		"own id reversed": reverse(a.id),
	}
	for name, id := range ids {
		if id == a.id {
			continue // (upper/reversed may equal the id itself)
		}
		for _, prefix := range []string{mainPrefix, legacyPrefix} {
			for _, ep := range []string{"send_to_client", "close_client", "bind_to_group", "unbind_from_group"} {
				r := n.postAt(t, prefix, ep, "na", validBody(ep, id, "room"))
				if r.Code != 10006 || r.Status != 404 {
					t.Errorf("%s id (%q): %s: want 10006 / HTTP 404", name, id, r)
				}
			}
		}
		if n.isOnline(t, "na", id) {
			t.Errorf("is_online(%s id %q) = true", name, id)
		}
	}
	// Nothing of that reached or closed the real clients.
	if !n.isOnline(t, "na", a.id) || !n.isOnline(t, "nb", b.id) {
		t.Fatalf("a real client went offline")
	}
	a.expectNoFrame(t, 200*time.Millisecond)
	b.expectNoFrame(t, 10*time.Millisecond)
	if _, list := n.onlineList(t, "na", "room"); len(list) != 0 {
		t.Errorf("group room of na lists %v, want []", list)
	}
	if _, list := n.onlineList(t, "nb", "room"); len(list) != 0 {
		t.Errorf("group room of nb lists %v, want []", list)
	}
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// SPEC 2/5: a body over the limit is 10007/413 (configurable limit and the
// 1 MiB default); a body under it is served.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	t.Run("configured", func(t *testing.T) {
		t.Parallel()
		n := startNode(t, map[string]string{"GOWS_SERVER_MAXBODYBYTES": "4096"})
		n.register(t, "big")
		c := n.dial(t, "big")
		big := `{"data":"` + strings.Repeat("x", 8192) + `"}`
		for _, prefix := range []string{mainPrefix, legacyPrefix} {
			for _, ep := range apiEndpoints {
				sys := "big"
				if ep == "register" {
					sys = ""
				}
				n.failAt(t, prefix, ep, sys, big, 10007)
			}
		}
		// Without a Content-Length (chunked) too.
		req, err := http.NewRequest(http.MethodPost, n.url+mainPrefix+"send_to_system", struct{ io.Reader }{strings.NewReader(big)})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("systemId", "big")
		resp, err := n.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := &apiResp{Method: "POST", Path: "send_to_system (chunked)", Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
		if err := checkEnvelope(r); err != nil {
			t.Error(err)
		}
		if r.Code != 10007 {
			t.Errorf("%s: want 10007", r)
		}
		// Under the limit: delivered.
		data := jsonStr(strings.Repeat("y", 3000))
		mid := n.sendToClient(t, "big", c.id, data)
		f := c.expectPush(t, 3*time.Second)
		if f.MessageID != mid || string(f.Data) != data {
			t.Errorf("frame %.100s...: want messageId %s and the 3000-byte data", f.Raw, mid)
		}
	})
	t.Run("default 1MiB", func(t *testing.T) {
		t.Parallel()
		n := startNode(t, nil)
		n.register(t, "big")
		over := `{"sendUserId":"u","data":"` + strings.Repeat("x", 1<<20) + `"}`
		n.fail(t, "send_to_system", "big", over, 10007)
		under := `{"sendUserId":"u","data":"` + strings.Repeat("x", 1000*1000) + `"}`
		var res msgResult
		mustUnmarshal(t, n.ok(t, "send_to_system", "big", under), &res)
		if res.Recipients == nil || *res.Recipients != 0 {
			t.Errorf("send_to_system with no client: recipients %v, want 0", res.Recipients)
		}
	})
}

// SPEC 2: hostile input never gets an empty body or a 500; every answer is a
// proper envelope. Malformed JSON is 10001.
func TestHostileBodies(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "h")
	c := n.dial(t, "h")
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	bodies := []struct {
		body      string
		malformed bool
	}{
		{"", false}, {" ", false}, {"{", true}, {"}", true}, {"-", true}, {"\x00", true}, {`{}{}`, true}, {"\xff\xfe\xfd", true},
		{`{"data":}`, true}, {`{"data":undefined}`, true}, {`{"data":NaN}`, true}, {`{"code":0x10}`, true},
		{`{'clientId':'a'}`, true}, {"{\"clientId\":\"a\"}\x00", true},
		{strings.Repeat("[", 100000), true},
		{"null", false}, {"true", false}, {"[]", false}, {"[{}]", false}, {`"str"`, false}, {"123", false},
		{`{}`, false},
		{`{"clientId":null}`, false}, {`{"clientId":{}}`, false}, {`{"clientId":[]}`, false}, {`{"clientId":true}`, false},
		{`{"clientIds":null}`, false}, {`{"clientIds":[null]}`, false}, {`{"clientIds":[[]]}`, false}, {`{"clientIds":[""]}`, false},
		{`{"groupName":null}`, false}, {`{"groupName":{}}`, false},
		{`{"code":1e400}`, false}, {`{"code":99999999999999999999}`, false}, {`{"code":-1}`, false}, {`{"code":null}`, false}, {`{"code":1e2}`, false},
		{`{"clientId":"a","clientId":"b"}`, false}, {`{"systemId":"\ud800"}`, false}, {`{"groupName":"\ud800"}`, false},
		{`{"data":` + deep + `}`, false},
		{`{"clientId":` + jsonStr(c.id) + `,"data":` + deep + `}`, false},
		{`{"clientId":"` + strings.Repeat("A", 200000) + `"}`, false},
		{`{"groupName":"g","clientId":` + jsonStr(c.id) + `,"` + strings.Repeat("k", 100000) + `":1}`, false},
		{`{"clientIds":[` + strings.TrimSuffix(strings.Repeat(`"x",`, 20000), ",") + `]}`, false},
	}
	for _, ep := range apiEndpoints {
		sys := "h"
		if ep == "register" {
			sys = ""
		}
		for i, b := range bodies {
			body := b.body
			if ep == "close_client" { // keep c connected
				body = strings.ReplaceAll(body, c.id, "nobody")
			}
			r, err := n.do(http.MethodPost, mainPrefix+ep, sysHeader(sys), []byte(body))
			if r == nil {
				t.Fatalf("%s body #%d: %v", ep, i, err)
			}
			if err != nil {
				t.Errorf("body #%d %.60q: %v", i, b.body, err)
				continue
			}
			if b.malformed && r.Code != 10001 {
				t.Errorf("body #%d %.60q: %s: want 10001 for malformed JSON", i, b.body, r)
			}
		}
		// Odd Content-Types and headers.
		for _, h := range []map[string]string{
			{"Content-Type": "text/plain"},
			{"Content-Type": "application/x-www-form-urlencoded"},
			{"Content-Type": "application/json; charset=latin1"},
			{"Content-Type": ""},
			{"systemId": strings.Repeat("h", 10000)},
			{"systemId": " h "},
			{"systemId": "ñ"},
			{"systemId": "h", "Content-Encoding": "gzip"},
		} {
			hh := map[string]string{}
			for k, v := range sysHeader(sys) {
				hh[k] = v
			}
			for k, v := range h {
				hh[k] = v
			}
			id := c.id
			if ep == "close_client" {
				id = "nobody"
			}
			if _, err := n.do(http.MethodPost, mainPrefix+ep, hh, bodyBytes(validBody(ep, id, "g"))); err != nil {
				t.Errorf("headers %.80v: %v", h, err)
			}
		}
	}
	// The node still serves.
	if !n.isOnline(t, "h", c.id) {
		t.Errorf("client went offline")
	}
	resp, err := n.hc.Get(n.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz %d after hostile input", resp.StatusCode)
	}
}

// SPEC 2: send_to_clients answers delivered and offline (an array, [] when
// all were delivered); every online client gets the same messageId.
func TestSendToClients(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "sc")
	n.register(t, "other")
	a := n.dial(t, "sc")
	b := n.dial(t, "sc")
	foreign := n.dial(t, "other")
	gone := n.dial(t, "sc")
	gone.close()
	n.waitOffline(t, "sc", gone.id, 5*time.Second)

	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		body := map[string]any{
			"clientIds":  []string{a.id, "unknown-id", b.id, foreign.id, gone.id},
			"sendUserId": "s", "code": 11, "msg": "many", "data": map[string]any{"k": []int{1, 2}},
		}
		r := n.postAt(t, prefix, "send_to_clients", "sc", body)
		if r.Code != 0 {
			t.Fatalf("%s: want code 0", r)
		}
		var res msgResult
		mustUnmarshal(t, r.Data, &res)
		checkMessageID(t, res.MessageID)
		if res.Delivered == nil || *res.Delivered != 2 {
			t.Errorf("%s: delivered %v, want 2", r, res.Delivered)
		}
		var offline []string
		if !bytes.HasPrefix(res.Offline, []byte("[")) {
			t.Fatalf("%s: offline is not an array", r)
		}
		mustUnmarshal(t, res.Offline, &offline)
		if !sameSet(offline, []string{"unknown-id", foreign.id, gone.id}) {
			t.Errorf("offline %v, want the unknown, foreign and closed ids", offline)
		}
		for _, c := range []*wsClient{a, b} {
			f := c.expectPush(t, 3*time.Second)
			want := `{"messageId":` + jsonStr(res.MessageID) + `,"sendUserId":"s","code":11,"msg":"many","data":{"k":[1,2]}}`
			if string(f.Raw) != want {
				t.Errorf("client got %s, want %s", f.Raw, want)
			}
		}
		foreign.expectNoFrame(t, 100*time.Millisecond)
	}

	// All online: offline is [] (not null).
	r := n.post(t, "send_to_clients", "sc", map[string]any{"clientIds": []string{a.id, b.id}, "data": 1})
	var res msgResult
	mustUnmarshal(t, r.Data, &res)
	if res.Delivered == nil || *res.Delivered != 2 || strings.TrimSpace(string(res.Offline)) != "[]" {
		t.Errorf("%s: want delivered 2, offline []", r)
	}
	a.expectPush(t, 3*time.Second)
	b.expectPush(t, 3*time.Second)
}

// SPEC 2: send_to_group/send_to_system reach exactly the members/the system's
// clients; recipients counts them; an empty group gives recipients 0.
// Groups are per system (SPEC 1).
func TestSendToGroupAndSystem(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false"})
	n.register(t, "gs")
	n.register(t, "gs2")
	m1, m2, out := n.dial(t, "gs"), n.dial(t, "gs"), n.dial(t, "gs")
	foreign := n.dial(t, "gs2")
	n.bind(t, "gs", m1.id, "room", "u1", "")
	n.bind(t, "gs", m2.id, "room", "u2", "")
	n.bind(t, "gs2", foreign.id, "room", "f", "")

	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		r := n.postAt(t, prefix, "send_to_group", "gs", `{"groupName":"room","sendUserId":"g","code":2,"msg":"to room","data":[1,"two",{"3":null}]}`)
		var res msgResult
		mustUnmarshal(t, r.Data, &res)
		checkMessageID(t, res.MessageID)
		if res.Recipients == nil || *res.Recipients != 2 {
			t.Errorf("%s: recipients want 2", r)
		}
		want := `{"messageId":` + jsonStr(res.MessageID) + `,"sendUserId":"g","code":2,"msg":"to room","data":[1,"two",{"3":null}]}`
		for _, c := range []*wsClient{m1, m2} {
			if f := c.expectPush(t, 3*time.Second); string(f.Raw) != want {
				t.Errorf("member got %s, want %s", f.Raw, want)
			}
		}
		out.expectNoFrame(t, 100*time.Millisecond)
		foreign.expectNoFrame(t, 10*time.Millisecond)

		r = n.postAt(t, prefix, "send_to_system", "gs", `{"sendUserId":"sys","code":4,"msg":"all","data":{"a":1}}`)
		res = msgResult{}
		mustUnmarshal(t, r.Data, &res)
		if res.Recipients == nil || *res.Recipients != 3 {
			t.Errorf("%s: recipients want 3", r)
		}
		want = `{"messageId":` + jsonStr(res.MessageID) + `,"sendUserId":"sys","code":4,"msg":"all","data":{"a":1}}`
		for _, c := range []*wsClient{m1, m2, out} {
			if f := c.expectPush(t, 3*time.Second); string(f.Raw) != want {
				t.Errorf("client got %s, want %s", f.Raw, want)
			}
		}
		foreign.expectNoFrame(t, 100*time.Millisecond)
	}

	// Empty and unknown groups: recipients 0.
	if _, rec := n.sendToGroup(t, "gs", "nobody-here", `"x"`); rec != 0 {
		t.Errorf("empty group: recipients %d, want 0", rec)
	}
	n.unbind(t, "gs", m1.id, "room")
	n.unbind(t, "gs", m2.id, "room")
	if _, rec := n.sendToGroup(t, "gs", "room", `"x"`); rec != 0 {
		t.Errorf("emptied group: recipients %d, want 0", rec)
	}
	for _, c := range []*wsClient{m1, m2, out} {
		c.expectNoFrame(t, 100*time.Millisecond)
	}
	// A system with no client.
	n.register(t, "empty")
	var res msgResult
	mustUnmarshal(t, n.ok(t, "send_to_system", "empty", `{"data":1}`), &res)
	if res.Recipients == nil || *res.Recipients != 0 {
		t.Errorf("send_to_system to a system without clients: recipients %v, want 0", res.Recipients)
	}
	// The other system's group was untouched.
	if _, rec := n.sendToGroup(t, "gs2", "room", `"f"`); rec != 1 {
		t.Errorf("gs2 room: recipients %d, want 1", rec)
	}
	foreign.expectPush(t, 3*time.Second)
}

// SPEC 2: get_online_list (system or group; list always an array) and
// is_online.
func TestOnlineListAndIsOnline(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false"})
	n.register(t, "ol")
	n.register(t, "ol2")

	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for _, body := range []string{`{}`, `{"groupName":""}`, `{"groupName":"nobody"}`} {
			r := n.postAt(t, prefix, "get_online_list", "ol", body)
			if got := strings.Join(strings.Fields(string(r.Data)), ""); got != `{"count":0,"list":[]}` {
				t.Errorf("%s: data %s, want {\"count\":0,\"list\":[]}", body, r.Data)
			}
		}
	}
	a, b, c := n.dial(t, "ol"), n.dial(t, "ol"), n.dial(t, "ol")
	x := n.dial(t, "ol2")
	n.bind(t, "ol", a.id, "g1", "", "")
	n.bind(t, "ol", b.id, "g1", "", "")
	n.bind(t, "ol", b.id, "g2", "", "")

	check := func(group string, want ...string) {
		t.Helper()
		for _, prefix := range []string{mainPrefix, legacyPrefix} {
			body := map[string]any{}
			if group != "" {
				body["groupName"] = group
			}
			r := n.postAt(t, prefix, "get_online_list", "ol", body)
			var d struct {
				Count int      `json:"count"`
				List  []string `json:"list"`
			}
			mustUnmarshal(t, r.Data, &d)
			if d.Count != len(want) || !sameSet(d.List, want) {
				t.Errorf("%sget_online_list %q: %s, want %v", prefix, group, r.Data, want)
			}
		}
	}
	check("", a.id, b.id, c.id)
	check("g1", a.id, b.id)
	check("g2", b.id)
	if _, l := n.onlineList(t, "ol2", ""); !sameSet(l, []string{x.id}) {
		t.Errorf("ol2 lists %v, want [%s]", l, x.id)
	}

	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		for id, want := range map[string]bool{a.id: true, b.id: true, x.id: false, "zzz": false} {
			r := n.postAt(t, prefix, "is_online", "ol", map[string]any{"clientId": id})
			if got := strings.Join(strings.Fields(string(r.Data)), ""); got != fmt.Sprintf(`{"online":%v}`, want) {
				t.Errorf("%sis_online %s: %s, want online %v", prefix, id, r.Data, want)
			}
		}
	}

	b.close()
	n.waitOnlineSet(t, "ol", "", []string{a.id, c.id}, 5*time.Second)
	check("g1", a.id)
	check("g2")
	if n.isOnline(t, "ol", b.id) {
		t.Errorf("closed client is online")
	}
}

// SPEC 3: close_client sends close 1000, the client goes offline; a second
// close_client is 10006.
func TestCloseClient(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "cc")
	for _, prefix := range []string{mainPrefix, legacyPrefix} {
		c := n.dial(t, "cc")
		r := n.postAt(t, prefix, "close_client", "cc", map[string]any{"clientId": c.id})
		if r.Code != 0 || strings.Join(strings.Fields(string(r.Data)), "") != "{}" {
			t.Errorf("%s: want code 0, data {}", r)
		}
		c.expectClose(t, 1000, 5*time.Second)
		n.waitOffline(t, "cc", c.id, 3*time.Second)
		n.failAt(t, prefix, "close_client", "cc", map[string]any{"clientId": c.id}, 10006)
		n.failAt(t, prefix, "send_to_client", "cc", map[string]any{"clientId": c.id, "data": 1}, 10006)
	}
}
