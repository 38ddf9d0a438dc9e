package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

type batchResults struct {
	Results []struct {
		Code int             `json:"code"`
		Msg  string          `json:"msg"`
		Data json.RawMessage `json:"data"`
	} `json:"results"`
}

// batch runs ops and returns the results (one per op).
func (n *node) batch(t testing.TB, systemID string, ops []map[string]any) batchResults {
	t.Helper()
	data := n.ok(t, "batch", systemID, map[string]any{"ops": ops})
	var r batchResults
	mustUnmarshal(t, data, &r)
	if len(r.Results) != len(ops) {
		t.Fatalf("batch of %d ops answered %d results", len(ops), len(r.Results))
	}
	return r
}

// batch runs its ops in order, one result per op, and a failing op does not
// stop the rest; more than 1,000 ops or an unknown op runs nothing.
func TestBatch(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "bat")
	a, b := n.dial(t, "bat"), n.dial(t, "bat")
	res := n.batch(t, "bat", []map[string]any{
		{"op": "bind_to_group", "clientId": a.id, "groupName": "g"},
		{"op": "send_to_client", "clientId": a.id, "data": 1},
		{"op": "send_to_client", "clientId": "nosuchclient", "data": 2},
		{"op": "send_to_clients", "clientIds": []string{a.id, b.id}, "data": 3},
		{"op": "send_to_group", "groupName": "g", "data": 4},
		{"op": "bind_to_user", "clientId": a.id, "userId": "ua"},
		{"op": "send_to_user", "userId": "ua", "data": 5},
		{"op": "unbind_from_group", "clientId": a.id, "groupName": "g"},
		{"op": "send_to_system", "data": 6},
		{"op": "close_client", "clientId": b.id},
		{"op": "send_to_client", "clientId": b.id, "data": 7},
	})
	codes := []string{}
	for _, r := range res.Results {
		codes = append(codes, strconv.Itoa(r.Code))
	}
	if got := strings.Join(codes, " "); got != "0 0 10006 0 0 0 0 0 0 0 10006" {
		t.Fatalf("codes %s: %+v", got, res.Results)
	}
	var sent struct {
		MessageID string `json:"messageId"`
	}
	mustUnmarshal(t, res.Results[1].Data, &sent)
	checkMessageID(t, sent.MessageID)
	// a: join event, 1, 3, 4, 5, (a leave is not sent to the client that
	// left) 6; in this order.
	var got []string
	for range 6 {
		f := a.expectPush(t, 5*time.Second)
		got = append(got, fmt.Sprintf("%d:%s", f.Code, f.Data))
	}
	if s := strings.Join(got, " "); !strings.HasPrefix(s, "1001:") || !strings.HasSuffix(s, " 0:1 0:3 0:4 0:5 0:6") {
		t.Fatalf("client a received %s", s)
	}
	b.expectClose(t, 1000, 5*time.Second)

	many := make([]map[string]any, 1001)
	for i := range many {
		many[i] = map[string]any{"op": "send_to_client", "clientId": a.id, "data": i}
	}
	n.fail(t, "batch", "bat", map[string]any{"ops": many}, 10001)
	n.fail(t, "batch", "bat", map[string]any{"ops": []map[string]any{
		{"op": "send_to_client", "clientId": a.id, "data": "never"}, {"op": "nope"}}}, 10001)
	a.expectNoFrame(t, 300*time.Millisecond)
	// The legacy path serves it too.
	r := n.postAt(t, legacyPrefix, "batch", "bat", map[string]any{"ops": []map[string]any{{"op": "send_to_client", "clientId": a.id, "data": "legacy"}}})
	if r.Code != 0 {
		t.Fatalf("legacy batch: %s", r)
	}
}

// cpuTicks reads the user+system CPU time of a process, in clock ticks.
func cpuTicks(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// The node's CPU per message sent through batch: batches of 1,000
// send_to_client ops spread over 100 clients that read and discard (so the
// test's own work disturbs the node as little as it can).
func TestBatchCPUPerMessage(t *testing.T) {
	n := startNode(t, map[string]string{"GOWS_LOG_LEVEL": "error"})
	n.register(t, "batcpu")
	const clients, perBatch, batches = 100, 1000, 300
	ids := make([]string, clients)
	var got atomic.Int64
	var readers sync.WaitGroup
	var conns []*websocket.Conn
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
		readers.Wait()
	}()
	for i := range ids {
		ws, _, err := websocket.DefaultDialer.Dial(n.wsURL("batcpu"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
		var hello struct {
			Data struct {
				ClientID string `json:"clientId"`
			} `json:"data"`
		}
		if err := ws.ReadJSON(&hello); err != nil {
			t.Fatal(err)
		}
		ids[i] = hello.Data.ClientID
		conns = append(conns, ws)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	bodies := make([][]byte, batches+1)
	for r := range bodies {
		var sb strings.Builder
		sb.WriteString(`{"ops":[`)
		for i := range perBatch {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"op":"send_to_client","clientId":%q,"data":{"n":%d,"r":%d}}`, ids[i%clients], i, r)
		}
		sb.WriteString(`]}`)
		bodies[r] = []byte(sb.String())
	}
	waitGot := func(want int64) {
		if !wstest.PollEvery(30*time.Second, time.Millisecond, func() bool { return got.Load() >= want }) {
			t.Fatalf("clients received %d of %d messages", got.Load(), want)
		}
	}
	n.post(t, "batch", "batcpu", bodies[0]) // warm up
	waitGot(perBatch)
	pid := n.cmd.Process.Pid
	before := cpuTicks(t, pid)
	start := time.Now()
	// Plain HTTP, the answers only read: validating 1,000 results per
	// answer here would take CPU from the node on this small box.
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	for _, b := range bodies[1:] {
		req, _ := http.NewRequest(http.MethodPost, n.url+mainPrefix+"batch", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("systemId", "batcpu")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("batch: HTTP %d", resp.StatusCode)
		}
	}
	waitGot(int64((batches + 1) * perBatch))
	wall := time.Since(start)
	ticks := cpuTicks(t, pid) - before
	msgs := batches * perBatch
	us := float64(ticks) * 1e6 / 100 / float64(msgs) // USER_HZ is 100 on Linux
	t.Logf("batch: %d messages (%d batches of %d send_to_client ops, %d clients) in %v: node CPU %.2f µs per message, %.0f messages/s",
		msgs, batches, perBatch, clients, wall.Round(time.Millisecond), us, float64(msgs)/wall.Seconds())
	if us > 25 {
		t.Errorf("node CPU per message through batch is %.2f µs (goal 5)", us)
	}
}

// An acked send in a batch finds the frames corked before it written: the
// client sees them and acks within the timeout.
func TestBatchAckedSendAfterCorkedSends(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "batack")
	a := n.dial(t, "batack")
	type result struct {
		r   batchResults
		dur time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		data, err := n.do("POST", mainPrefix+"batch", sysHeader("batack"), bodyBytes(map[string]any{"ops": []map[string]any{
			{"op": "send_to_client", "clientId": a.id, "data": 1},
			{"op": "send_to_client", "clientId": a.id, "data": 2, "ack": true, "ackTimeout": "5s"},
		}}))
		var r batchResults
		if err == nil {
			err = json.Unmarshal(data.Data, &r)
		}
		if err != nil {
			t.Error(err)
		}
		done <- result{r, time.Since(start)}
	}()
	first := a.expectPush(t, 5*time.Second)
	raw, err := a.next(5 * time.Second)
	if err != nil {
		t.Fatalf("the acked frame: %v", err)
	}
	var acked struct {
		MessageID string `json:"messageId"`
		Ack       bool   `json:"ack"`
	}
	if err := json.Unmarshal(raw, &acked); err != nil || !acked.Ack || string(first.Data) != "1" {
		t.Fatalf("frames %s then %s", first.Raw, raw)
	}
	if err := a.conn.WriteMessage(1, []byte(`{"ack":"`+acked.MessageID+`"}`)); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if len(res.r.Results) != 2 || !strings.Contains(string(res.r.Results[1].Data), `"acked":true`) || res.dur > 4*time.Second {
		t.Fatalf("batch answered %+v after %v", res.r.Results, res.dur)
	}
}
