package api

import (
	"encoding/json"
	"strings"
	"testing"
)

type batchAnswer struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data struct {
		Results []struct {
			Code int             `json:"code"`
			Msg  string          `json:"msg"`
			Data json.RawMessage `json:"data"`
		} `json:"results"`
	} `json:"data"`
}

func TestBatchRunsInOrderAndKeepsGoing(t *testing.T) {
	rec := &recorder{}
	e := engine(rec)
	status, _, raw := call(e, "batch", `{"ops":[
		{"op":"send_to_client","clientId":"a","data":{"n":1}},
		{"op":"send_to_client","clientId":"gone"},
		{"op":"send_to_client","clientId":""},
		{"op":"bind_to_group","clientId":"c","groupName":"g","userId":"u","extend":"x"},
		{"op":"send_to_user","userId":"u"},
		{"op":"send_to_group","groupName":"g","data":[1,2]},
		{"op":"send_to_clients","clientIds":["a","b"]},
		{"op":"close_client","clientId":"boom2"}
	]}`)
	if status != 200 {
		t.Fatalf("status %d %s", status, raw)
	}
	var a batchAnswer
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 10006, 10001, 0, 10001, 0, 0, 0}
	if len(a.Data.Results) != len(want) {
		t.Fatalf("results %s", raw)
	}
	for i, w := range want {
		if a.Data.Results[i].Code != w {
			t.Errorf("op %d: code %d (%s), want %d", i, a.Data.Results[i].Code, a.Data.Results[i].Msg, w)
		}
	}
	if got := string(a.Data.Results[0].Data); got != `{"messageId":"mid"}` {
		t.Errorf("op 0 data %s", got)
	}
	if !strings.Contains(a.Data.Results[4].Msg, "send_to_user") || string(a.Data.Results[4].Data) != "null" {
		t.Errorf("unsupported op: %+v", a.Data.Results[4])
	}
	if !strings.Contains(a.Data.Results[2].Msg, "clientId") {
		t.Errorf("invalid op msg: %s", a.Data.Results[2].Msg)
	}
	if string(rec.msg.Data) != "" || rec.last != "bind s1 c g u x" {
		// the last op that carried a message was send_to_clients (no data)
		t.Errorf("last message %q, last call %q", rec.msg.Data, rec.last)
	}
}

func TestBatchRefusedWhole(t *testing.T) {
	rec := &recorder{}
	e := engine(rec)
	many := strings.Repeat(`{"op":"send_to_client","clientId":"a"},`, MaxBatchOps)
	cases := []struct{ body, msgHas string }{
		{`{}`, "ops"},
		{`{"ops":{}}`, "ops"},
		{`{"ops":[` + many + `{"op":"send_to_client","clientId":"a"}]}`, "at most 1000"},
		{`{"ops":[{"op":"bind_to_group","clientId":"a","groupName":"g"},{"op":"register"}]}`, "ops[1]"},
		{`{"ops":[{"op":"bind_to_group","clientId":"a","groupName":"g"},{}]}`, "ops[1]"},
		{`{"ops":[{"op":"bind_to_group","clientId":"a","groupName":"g"},7]}`, "ops[1]"},
		{`{"ops":[{"op":"bind_to_group","clientId":"a","groupName":"g"},{"op":3}]}`, "ops[1]"},
	}
	for _, c := range cases {
		status, r, raw := call(e, "batch", c.body)
		if status != 400 || r.Code != 10001 || !strings.Contains(r.Msg, c.msgHas) {
			t.Errorf("%.60s: %d %s", c.body, status, raw)
		}
	}
	if rec.last != "" {
		t.Fatalf("an op ran: %q", rec.last)
	}
	// Exactly the limit runs.
	status, _, raw := call(e, "batch", `{"ops":[`+strings.TrimSuffix(many, ",")+`]}`)
	if status != 200 || strings.Count(raw, `"code":0`) != MaxBatchOps+1 {
		t.Fatalf("1000 ops: %d %.200s", status, raw)
	}
	if status, _, raw := call(e, "batch", `{"ops":[]}`); status != 200 || !strings.Contains(raw, `"results":[]`) {
		t.Fatalf("no ops: %d %s", status, raw)
	}
}

func TestSystemEndpoints(t *testing.T) {
	rec := &recorder{}
	e := engine(rec)
	cases := []struct {
		endpoint, body string
		status, code   int
		has            string
	}{
		{"register", `{"systemId":"s","webhookUrl":"http://127.0.0.1:1/h","webhookEvents":["connect","message"]}`, 200, 0, `"webhookSecret":"secret"`},
		{"register", `{"systemId":"s","webhookUrl":"ftp://x/h"}`, 400, 10001, "webhookUrl"},
		{"register", `{"systemId":"s","webhookUrl":"/relative"}`, 400, 10001, "webhookUrl"},
		{"register", `{"systemId":"s","webhookEvents":["connect","typo"]}`, 400, 10001, "typo"},
		{"register", `{"systemId":"s","webhookEvents":"connect"}`, 400, 10001, "webhookEvents"},
		{"update_system", `{"webhookUrl":"https://example.com/h","rotateSecret":true}`, 200, 0, `"webhookSecret":"new"`},
		{"update_system", `{"webhookEvents":["nope"]}`, 400, 10001, "nope"},
		{"update_system", `{"rotateSecret":"yes"}`, 400, 10001, "rotateSecret"},
		{"get_system", ``, 200, 0, `"webhookEvents":[]`},
	}
	for _, c := range cases {
		status, r, raw := call(e, c.endpoint, c.body)
		if status != c.status || r.Code != c.code || !strings.Contains(raw, c.has) {
			t.Errorf("%s %s: %d %s", c.endpoint, c.body, status, raw)
		}
	}
	if want := "register s http://127.0.0.1:1/h connect,message"; rec.last != want {
		t.Fatalf("register passed %q", rec.last)
	}
}

func TestBatchAckOpsTakeTheFullPath(t *testing.T) {
	e := engine(&recorder{})
	// The recorder has no users: an acked send answers 10001 from the full
	// send_to_client path, not the fast one.
	status, _, raw := call(e, "batch", `{"ops":[{"op":"send_to_client","clientId":"a","ack":true},{"op":"send_to_client","clientId":"a","ackTimeout":"1s"},{"op":"send_to_client","clientId":"a"}]}`)
	var a batchAnswer
	if err := json.Unmarshal([]byte(raw), &a); err != nil || status != 200 {
		t.Fatal(status, raw)
	}
	if a.Data.Results[0].Code != 10001 || a.Data.Results[1].Code != 10001 || a.Data.Results[2].Code != 0 {
		t.Fatalf("results %s", raw)
	}
}

func TestBatchInternalErrorIsHidden(t *testing.T) {
	e := engine(&recorder{})
	status, _, raw := call(e, "batch", `{"ops":[{"op":"send_to_client","clientId":"boom"},{"op":"send_to_client","clientId":"a"}]}`)
	if status != 200 || !strings.Contains(raw, `"code":10011`) || !strings.Contains(raw, "request id") || strings.Contains(raw, "disk on fire") {
		t.Fatalf("%d %s", status, raw)
	}
}

func TestBatchRespMarshalMatchesReflection(t *testing.T) {
	r := batchResp{Results: []BatchResult{
		{Code: 0, Msg: "success", Data: messageID{"abc123"}},
		{Code: 10006, Msg: "client is not online"},
		{Code: 0, Msg: "success", Data: messageID{`we"ird<`}},
		{Code: 0, Msg: "success", Data: empty},
	}}
	fast, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	type plain batchResp // no MarshalJSON
	slow, _ := json.Marshal(plain(r))
	if string(fast) != string(slow) {
		t.Fatalf("fast %s\nslow %s", fast, slow)
	}
}

// The one-decode path for batches of plain sends answers exactly as the
// general one: results in order, per-op errors, and a malformed op falls
// back to the general path's per-op result.
func TestBatchSendsOnlyPath(t *testing.T) {
	e := engine(&recorder{})
	bodies := map[string][]int{
		`{"ops":[{"op":"send_to_client","clientId":"a","data":1},{"op":"send_to_client","clientId":"gone"},{"op":"send_to_client","clientId":""}]}`: {0, 10006, 10001},
		// a type error in one op: the general path gives that op its error
		`{"ops":[{"op":"send_to_client","clientId":"a"},{"op":"send_to_client","clientId":5}]}`: {0, 10001},
		// "op" inside data does not fool the pre-check
		`{"ops":[{"op":"send_to_client","clientId":"a","data":{"op":"x"}}]}`:                  {0},
		`{"ops":[{"op":"send_to_client","clientId":"a","data":"\"op\":\"send_to_client\""}]}`: {0},
	}
	for body, want := range bodies {
		status, _, raw := call(e, "batch", body)
		var a batchAnswer
		if err := json.Unmarshal([]byte(raw), &a); err != nil || status != 200 || len(a.Data.Results) != len(want) {
			t.Fatalf("%s: %d %s", body, status, raw)
		}
		for i, w := range want {
			if a.Data.Results[i].Code != w {
				t.Errorf("%s: op %d code %d, want %d", body, i, a.Data.Results[i].Code, w)
			}
		}
	}
}

func TestBatchAnswerRendersAsEncodingJSON(t *testing.T) {
	e := engine(&recorder{})
	_, _, raw := call(e, "batch", `{"ops":[{"op":"send_to_client","clientId":"a"},{"op":"send_to_client","clientId":"gone"}]}`)
	want := `{"code":0,"msg":"success","data":{"results":[{"code":0,"msg":"success","data":{"messageId":"mid"}},{"code":10006,"msg":"client is not online","data":null}]}}`
	if raw != want {
		t.Fatalf("answer %s\nwant   %s", raw, want)
	}
}
