package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

// SPEC 3: a client that does not read never delays anyone else. The slow one
// overflows its queue and is closed with 1008, and that close frame is still
// written within the write timeout once it reads again; the close is counted
// in metrics (SPEC 7). Not parallel: it measures latencies.
func TestSlowConsumer(t *testing.T) {
	n := startNode(t, map[string]string{
		"GOWS_WEBSOCKET_QUEUELENGTH":      "8",
		"GOWS_WEBSOCKET_WRITETIMEOUT":     "2s",
		"GOWS_WEBSOCKET_MEMBERSHIPEVENTS": "false",
	})
	n.register(t, "slow")
	fast := n.dial(t, "slow")
	slow, err := n.dialOpts("slow", dialOpt{noReader: true}) // never reads
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.conn.Close() })
	n.bind(t, "slow", fast.id, "g", "", "")
	n.bind(t, "slow", slow.id, "g", "", "")

	payload := strings.Repeat("x", 64<<10)
	var (
		worst     time.Duration
		slowGone  = -1
		lateSends []string
	)
	for i := 0; i < 400; i++ {
		data := `"` + strconv.Itoa(i) + ":" + payload + `"`
		start := time.Now()
		mid, rec := n.sendToGroup(t, "slow", "g", data)
		apiDur := time.Since(start)
		sent := time.Now()
		rx, err := fast.nextAt(3 * time.Second)
		if err != nil {
			t.Fatalf("send %d: fast client: %v", i, err)
		}
		lat := rx.at.Sub(sent)
		if !strings.HasPrefix(string(rx.data), `{"messageId":`+jsonStr(mid)+`,`) {
			t.Fatalf("send %d: fast client got %.80s, want messageId %s", i, rx.data, mid)
		}
		if lat > worst {
			worst = lat
		}
		if lat > 100*time.Millisecond || apiDur > time.Second {
			lateSends = append(lateSends, fmt.Sprintf("#%d: API %v, delivery %v", i, apiDur, lat))
		}
		if slowGone < 0 && (rec < 2 || !n.isOnline(t, "slow", slow.id)) {
			slowGone = i
		}
		if slowGone >= 0 && i >= slowGone+5 {
			break
		}
	}
	if len(lateSends) > 0 {
		t.Errorf("the fast client was delayed (want delivery within 100ms of each send): %d of the sends, e.g. %v", len(lateSends), lateSends[:min(len(lateSends), 5)])
	}
	t.Logf("worst delivery latency to the fast client: %v", worst)
	if slowGone < 0 {
		t.Fatalf("the client that never reads was not closed after 400 x 64 KiB (queueLength 8)")
	}
	t.Logf("slow client dropped after %d sends", slowGone)

	// Read the slow connection now: the buffered frames, then close 1008,
	// within the write timeout (2s) plus slack.
	readStart := time.Now()
	_ = slow.conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	var rerr error
	frames := 0
	for i := 0; i < 100000; i++ {
		if _, _, rerr = slow.conn.ReadMessage(); rerr != nil {
			break
		}
		frames++
	}
	var ce *websocket.CloseError
	if !errors.As(rerr, &ce) || ce.Code != 1008 {
		t.Errorf("slow client (after reading %d frames for %v): want close 1008, got %v", frames, time.Since(readStart), rerr)
	}

	// The fast client is unaffected and still receives.
	mid, rec := n.sendToGroup(t, "slow", "g", `"after"`)
	if rec != 1 {
		t.Errorf("after the slow client left: recipients %d, want 1", rec)
	}
	if f := fast.expectPush(t, 3*time.Second); f.MessageID != mid {
		t.Errorf("fast client got %s", f.Raw)
	}
	if _, list := n.onlineList(t, "slow", ""); !sameSet(list, []string{fast.id}) {
		t.Errorf("online list %v, want only the fast client", list)
	}

	// Counted in metrics: some sample with "slow" in its name is > 0.
	resp, err := n.hc.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.Contains(strings.ToLower(line), "slow") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil && v > 0 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("/metrics has no non-zero sample whose name mentions slow consumers")
	}
}

// SPEC 2/3 under churn: 2,000 connects and disconnects (close frame, dropped
// TCP, close_client) by 50 workers while group and system sends run; then
// get_online_list is exact, per system and per group, and every remaining
// client still receives.
func TestChurn(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	n.register(t, "churn")
	baseline := n.goroutines(t)
	const total, workers, groups = 2000, 50, 10

	var (
		mu      sync.Mutex
		errs    []string
		kept    = map[string]*wsClient{}
		keptGrp = map[string]int{}
		closed  []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range kept {
			c.abort()
		}
	})

	// Senders: group and system sends while the churn runs.
	stop := make(chan struct{})
	var sends atomic.Int64
	var sendWG sync.WaitGroup
	for s := 0; s < 2; s++ {
		sendWG.Add(1)
		go func(s int) {
			defer sendWG.Done()
			for k := 0; k < 100000; k++ {
				select {
				case <-stop:
					return
				default:
				}
				ep, body := "send_to_group", `{"groupName":"g`+strconv.Itoa(k%groups)+`","data":{"k":`+strconv.Itoa(k)+`}}`
				if s == 1 && k%5 == 0 {
					ep, body = "send_to_system", `{"data":"all"}`
				}
				r, err := n.do(http.MethodPost, mainPrefix+ep, sysHeader("churn"), []byte(body))
				if err != nil {
					fail("%v", err)
				} else if r.Code != 0 {
					fail("%s: want code 0", r)
				}
				sends.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}(s)
	}

	jobs := make(chan int, total)
	for i := 0; i < total; i++ {
		jobs <- i
	}
	close(jobs)
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := range jobs {
				if time.Now().After(deadline) {
					fail("churn did not finish within 60s")
					return
				}
				c, err := n.dialOpts("churn", dialOpt{})
				if err != nil {
					fail("connect %d: %v", i, err)
					continue
				}
				g := i % groups
				r, err := n.do(http.MethodPost, mainPrefix+"bind_to_group", sysHeader("churn"),
					bodyBytes(map[string]any{"clientId": c.id, "groupName": "g" + strconv.Itoa(g), "userId": strconv.Itoa(i)}))
				if err != nil || r.Code != 0 {
					fail("bind %d: %v %v", i, r, err)
				}
				if i%20 == 0 {
					mu.Lock()
					kept[c.id] = c
					keptGrp[c.id] = g
					mu.Unlock()
					continue
				}
				if rng.Intn(3) == 0 {
					time.Sleep(time.Duration(rng.Intn(3)) * time.Millisecond)
				}
				switch i % 3 {
				case 0:
					c.close()
				case 1:
					c.abort()
				case 2:
					r, err := n.do(http.MethodPost, mainPrefix+"close_client", sysHeader("churn"), bodyBytes(map[string]any{"clientId": c.id}))
					if err != nil || r.Code != 0 {
						fail("close_client %d: %v %v", i, r, err)
					}
					if code, err := c.closeCode(5 * time.Second); code != 1000 {
						fail("close_client %d: close code %d (%v)", i, code, err)
					}
					c.abort()
				}
				mu.Lock()
				closed = append(closed, c.id)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	sendWG.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d sends during the churn; %d clients kept, %d closed", sends.Load(), len(kept), len(closed))

	var keptIDs []string
	perGroup := map[int][]string{}
	for id, c := range kept {
		select {
		case <-c.done:
			t.Errorf("kept client %s was disconnected: %v", id, c.Err())
		default:
		}
		keptIDs = append(keptIDs, id)
		perGroup[keptGrp[id]] = append(perGroup[keptGrp[id]], id)
	}
	n.waitOnlineSet(t, "churn", "", keptIDs, 10*time.Second)
	for g := 0; g < groups; g++ {
		n.waitOnlineSet(t, "churn", "g"+strconv.Itoa(g), perGroup[g], 5*time.Second)
	}
	for _, id := range closed[:50] {
		if n.isOnline(t, "churn", id) {
			t.Errorf("closed client %s is online", id)
		}
	}

	// Every remaining client still receives: a final system message.
	var res msgResult
	mustUnmarshal(t, n.ok(t, "send_to_system", "churn", `{"data":"final"}`), &res)
	if res.Recipients == nil || *res.Recipients != len(kept) {
		t.Errorf("final send_to_system: recipients %v, want %d", res.Recipients, len(kept))
	}
	for id, c := range kept {
		got := false
		for k := 0; k < 100000 && !got; k++ {
			raw, err := c.next(5 * time.Second)
			if err != nil {
				t.Errorf("kept client %s: no final message: %v", id, err)
				break
			}
			f, err := parseFrame(raw)
			if err != nil {
				t.Errorf("kept client %s: %v", id, err)
				break
			}
			got = f.MessageID == res.MessageID
		}
	}
	resp, err := n.hc.Get(n.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz %d after the churn", resp.StatusCode)
	}

	// Once every client is gone the node is back to its idle goroutine
	// count (go_goroutines in /metrics): nothing leaked per connection.
	mu.Lock()
	for _, c := range kept {
		c.close()
	}
	mu.Unlock()
	n.waitOnlineSet(t, "churn", "", nil, 10*time.Second)
	if baseline > 0 {
		last := 0
		if !wstest.PollEvery(10*time.Second, 100*time.Millisecond, func() bool {
			last = n.goroutines(t)
			return last <= baseline+5
		}) {
			t.Errorf("node goroutines: %d before the churn, still %d 10s after every client left", baseline, last)
		}
	}
}

// goroutines reads go_goroutines from /metrics (-1 when absent), on a fresh
// HTTP connection so that idle keep-alive connections do not count.
func (n *node) goroutines(t *testing.T) int {
	t.Helper()
	return wstest.Goroutines(t, n.url+"/metrics")
}

// SPEC 3: a write that cannot complete within the write timeout ends the
// connection, even when the queue never overflows; others are unaffected,
// and the remaining members get exactly one 1002 for it.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	n := startNode(t, map[string]string{
		"GOWS_WEBSOCKET_WRITETIMEOUT": "1s",
		"GOWS_WEBSOCKET_QUEUELENGTH":  "1024",
	})
	n.register(t, "wt")
	fast := n.dial(t, "wt")
	stuck, err := n.dialOpts("wt", dialOpt{noReader: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.conn.Close() })
	n.bind(t, "wt", fast.id, "g", "", "")
	fast.expectEvent(t, 1001, memberEvent{ClientID: fast.id, GroupName: "g"})
	n.bind(t, "wt", stuck.id, "g", "s", "")
	fast.expectEvent(t, 1001, memberEvent{ClientID: stuck.id, GroupName: "g", UserID: "s"})

	leaves := 0
	// nextPush returns the next frame that is not the stuck client's 1002.
	nextPush := func() frame {
		t.Helper()
		for k := 0; k < 3; k++ {
			f := fast.expectPush(t, 3*time.Second)
			if f.Code != 1002 {
				return f
			}
			checkEvent(t, fast.id, f, 1002, memberEvent{ClientID: stuck.id, GroupName: "g", UserID: "s"})
			leaves++
		}
		t.Fatalf("too many 1002 events")
		return frame{}
	}
	big := jsonStr(strings.Repeat("w", 64<<10))
	var last time.Time
	for i := 0; i < 200; i++ {
		mid, _ := n.sendToGroup(t, "wt", "g", big)
		if f := nextPush(); f.MessageID != mid {
			t.Fatalf("fast client got %.100s", f.Raw)
		}
		last = time.Now()
		if !n.isOnline(t, "wt", stuck.id) {
			break
		}
	}
	// At most writeTimeout after the socket filled up (plus slack).
	if !wstest.PollEvery(time.Until(last.Add(4*time.Second)), 20*time.Millisecond, func() bool { return !n.isOnline(t, "wt", stuck.id) }) {
		t.Fatalf("a client whose writes block was still online 4s after the last send (writeTimeout 1s)")
	}
	mid, rec := n.sendToGroup(t, "wt", "g", `"ok"`)
	if rec != 1 {
		t.Errorf("recipients %d, want 1", rec)
	}
	if f := nextPush(); f.MessageID != mid {
		t.Errorf("fast client got %.100s", f.Raw)
	}
	if leaves != 1 {
		t.Errorf("the remaining member got %d 1002 events for the dropped client, want 1", leaves)
	}
}
