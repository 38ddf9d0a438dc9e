package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------- histogram

func TestHistIndexRangeRoundTrip(t *testing.T) {
	vals := []uint64{0, 1, 63, 64, 127, 128, 129, 200, 255, 256, 1000, 12345, 1 << 20, 999_999_999, 1<<62 + 12345, math.MaxUint64}
	for range 2000 {
		vals = append(vals, rand.Uint64()>>rand.IntN(64))
	}
	for _, v := range vals {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of [0,%d)", v, i, histBuckets)
		}
		lo, hi := histRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d whose range is [%d,%d]", v, i, lo, hi)
		}
		if v >= histExact && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d of its lower bound", i, lo, hi, histSub)
		}
	}
	// buckets are contiguous and increasing
	_, prevHi := histRange(0)
	for i := 1; i < histBuckets; i++ {
		lo, hi := histRange(i)
		if lo != prevHi+1 {
			t.Fatalf("gap before bucket %d: previous hi %d, lo %d", i, prevHi, lo)
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d, want MaxUint64", prevHi)
	}
}

func TestHistQuantilesUniform(t *testing.T) {
	var h Hist
	// 1..100000 microseconds, in nanoseconds
	for i := 1; i <= 100000; i++ {
		h.Record(int64(i) * 1000)
	}
	d := h.Snapshot(false)
	if d.N != 100000 {
		t.Fatalf("N = %d", d.N)
	}
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 50_000_000}, {0.9, 90_000_000}, {0.99, 99_000_000}, {0.999, 99_900_000},
	} {
		got := float64(d.Quantile(tc.q))
		if rel := math.Abs(got-tc.want) / tc.want; rel > 0.01 {
			t.Errorf("q%.3f = %.0f, want %.0f (rel err %.4f)", tc.q, got, tc.want, rel)
		}
	}
	if d.Min != 1000 || d.Max != 100_000_000 {
		t.Errorf("min/max = %d/%d", d.Min, d.Max)
	}
	if got := d.Quantile(1); got != d.Max {
		t.Errorf("q1 = %d, want max %d", got, d.Max)
	}
	if got := d.Quantile(0); got != d.Min {
		t.Errorf("q0 = %d, want min %d", got, d.Min)
	}
	if m := d.Mean(); math.Abs(m-50_000_500) > 1 {
		t.Errorf("mean = %f, want 50000500", m)
	}
}

func TestHistQuantileSkewedAndSmall(t *testing.T) {
	var h Hist
	// 98 fast samples, 2 slow ones: p50 fast, p99 slow
	for range 98 {
		h.Record(int64(100 * time.Microsecond))
	}
	h.Record(int64(50 * time.Millisecond))
	h.Record(int64(80 * time.Millisecond))
	d := h.Snapshot(false)
	if p50 := d.QuantileDur(0.5); p50 < 99*time.Microsecond || p50 > 101*time.Microsecond {
		t.Errorf("p50 = %s, want ~100us", p50)
	}
	if p99 := d.QuantileDur(0.99); p99 < 49*time.Millisecond || p99 > 51*time.Millisecond {
		t.Errorf("p99 = %s, want ~50ms", p99)
	}
	if p999 := d.QuantileDur(0.999); p999 != 80*time.Millisecond {
		t.Errorf("p99.9 = %s, want 80ms (clamped to max)", p999)
	}
	// exact small values; negative values count as 0
	var e Hist
	e.Record(-5)
	e.Record(3)
	e.Record(7)
	ed := e.Snapshot(false)
	if ed.Min != 0 || ed.Quantile(0.5) != 3 || ed.Quantile(0.99) != 7 {
		t.Errorf("small: min %d p50 %d p99 %d", ed.Min, ed.Quantile(0.5), ed.Quantile(0.99))
	}
	var empty HistData
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram should answer 0")
	}
}

func TestHistMergeSerializeReset(t *testing.T) {
	var a, b Hist
	for i := range 1000 {
		a.Record(int64(i) * 1000)
		b.Record(int64(i+1000) * 1000)
	}
	da := a.Snapshot(false)
	// through JSON, as between processes
	raw, err := json.Marshal(b.Snapshot(false))
	if err != nil {
		t.Fatal(err)
	}
	var db HistData
	if err := json.Unmarshal(raw, &db); err != nil {
		t.Fatal(err)
	}
	var m HistData
	m.Merge(da)
	m.Merge(db)
	if m.N != 2000 || m.Min != 0 || m.Max != 1_999_000 {
		t.Fatalf("merged N %d min %d max %d", m.N, m.Min, m.Max)
	}
	if p := float64(m.Quantile(0.5)); math.Abs(p-1_000_000)/1_000_000 > 0.01 {
		t.Errorf("merged p50 = %.0f, want ~999500", p)
	}
	// reset empties the live histogram and returns what was in it
	got := a.Snapshot(true)
	if got.N != 1000 {
		t.Errorf("reset snapshot N = %d", got.N)
	}
	if after := a.Snapshot(false); after.N != 0 || len(after.Counts) != 0 || after.Max != 0 {
		t.Errorf("after reset: %+v", after)
	}
	a.Record(5)
	if after := a.Snapshot(false); after.Min != 5 || after.Max != 5 {
		t.Errorf("min/max after reset: %d/%d", after.Min, after.Max)
	}
}

func TestHistConcurrent(t *testing.T) {
	var h Hist
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				h.Record(int64(g*10000 + i))
			}
		}()
	}
	wg.Wait()
	d := h.Snapshot(false)
	var sum uint64
	for _, c := range d.Counts {
		sum += c
	}
	if d.N != 80000 || sum != 80000 || d.Min != 0 || d.Max != 79999 {
		t.Fatalf("N %d, bucket sum %d, min %d, max %d", d.N, sum, d.Min, d.Max)
	}
}

// ---------------------------------------------------------------- payload

func TestPayloadRoundTripAndSize(t *testing.T) {
	now := time.Now().UnixNano()
	for _, size := range []int{0, 10, 64, 65, 100, 1024, 4096} {
		p := appendPayload(nil, "3fa2b1c0", 12345, now, size)
		if !json.Valid(p) {
			t.Fatalf("size %d: not JSON: %s", size, p)
		}
		base := payloadBase("3fa2b1c0", 12345, now)
		want := max(size, base)
		if len(p) != want {
			t.Errorf("size %d: len %d, want %d (%s)", size, len(p), want, p)
		}
		// as the server pushes it, inside a frame
		frame := []byte(`{"messageId":"m1","sendUserId":"","code":0,"msg":"","data":` + string(p) + `}`)
		info, ok := parsePayload(frame)
		if !ok || string(info.Run) != "3fa2b1c0" || info.Seq != 12345 || info.Sent != now {
			t.Fatalf("size %d: parsed %+v ok=%v", size, info, ok)
		}
	}
	// 64-byte payload with a real timestamp is exactly 64 bytes
	if p := appendPayload(nil, "abcdef01", 199, now, 64); len(p) != 64 {
		t.Errorf("64-byte payload is %d bytes: %s", len(p), p)
	}
}

func TestPayloadReencodedByServer(t *testing.T) {
	// a server that re-encodes data (reorders keys, adds spaces) must still be understood
	p := appendPayload(nil, "00ff00ff", 7, 1700000000123456789, 80)
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	re, _ := json.MarshalIndent(map[string]any{"data": m, "code": 0}, "", " ")
	info, ok := parsePayload(re)
	if !ok || info.Seq != 7 || info.Sent != 1700000000123456789 || string(info.Run) != "00ff00ff" {
		t.Fatalf("re-encoded: %+v ok=%v\n%s", info, ok, re)
	}
}

func TestPayloadRejects(t *testing.T) {
	for _, f := range []string{
		``,
		`{"code":0,"data":"hello"}`,
		`{"data":{"wsb":"r.1"}}`,                      // no time
		`{"data":{"wsb":"r.x1.5"}}`,                   // bad seq
		`{"data":{"wsb":"r..5"}}`,                     // empty seq
		`{"data":{"wsb":".1.5"}}`,                     // empty run
		`{"data":{"wsb":"r.1."}}`,                     // empty time
		`{"data":{"wsb":"r.1.5y"}}`,                   // bad padding
		`{"data":{"wsb":"r.1.5\"x"}}`,                 // escape
		`{"data":{"wsb":5}}`,                          // not a string
		`{"data":{"wsb":"r.1.99999999999999999999"}}`, // overflow
	} {
		if info, ok := parsePayload([]byte(f)); ok {
			t.Errorf("parsePayload(%s) = %+v, want rejection", f, info)
		}
	}
	if info, ok := parsePayload([]byte(`{"data":{"wsb": "r.1.5xxx"}}`)); !ok || info.Sent != 5 || info.Seq != 1 {
		t.Errorf("spaced payload: %+v %v", info, ok)
	}
}

func TestMembershipEventDetection(t *testing.T) {
	cases := map[string]bool{
		`{"messageId":"a","sendUserId":"","code":1001,"msg":"","data":{"clientId":"x","groupName":"g","userId":"","extend":""}}`: true,
		`{"messageId":"a","sendUserId":"","code":1002,"msg":"","data":{}}`:                                                       true,
		`{"messageId":"a","sendUserId":"","code": 1002,"msg":"","data":{}}`:                                                      true,
		`{"messageId":"a","sendUserId":"","code":0,"msg":"","data":{"code":1001}}`:                                               false,
		`{"messageId":"a","sendUserId":"","code":10010,"msg":"","data":{}}`:                                                      false,
		`{"messageId":"a","sendUserId":"","code":100,"msg":"","data":{}}`:                                                        false,
		`{"code":0,"msg":"success","data":{"clientId":"abc"}}`:                                                                   false,
		`not json`: false,
	}
	for f, want := range cases {
		if got := isMembershipEvent([]byte(f)); got != want {
			t.Errorf("isMembershipEvent(%s) = %v, want %v", f, got, want)
		}
	}
	if c, ok := frameCode([]byte(`{"code":-3}`)); !ok || c != -3 {
		t.Errorf("frameCode negative: %d %v", c, ok)
	}
}

func TestCentrifugoPushParses(t *testing.T) {
	p := appendPayload(nil, "cafebabe", 3, 42, 64)
	frame := []byte(`{"push":{"channel":"g","pub":{"data":` + string(p) + `,"offset":4}}}` + "\n" + `{}`)
	lines := bytes.Split(frame, []byte("\n"))
	if len(lines) != 2 {
		t.Fatal(len(lines))
	}
	info, ok := parsePayload(lines[0])
	if !ok || info.Seq != 3 || info.Sent != 42 {
		t.Fatalf("%+v %v", info, ok)
	}
	if _, ok := parsePayload(lines[1]); ok {
		t.Error("ping frame parsed as payload")
	}
}

// ---------------------------------------------------------------- seq tracking

// seqCounts aggregates verdicts (in tests).
type seqCounts struct {
	Unique, Dup, OOO, Bad uint64
}

func (c *seqCounts) add(v seqVerdict) {
	switch v {
	case seqNew:
		c.Unique++
	case seqOOO:
		c.Unique++
		c.OOO++
	case seqDup:
		c.Dup++
	case seqBad:
		c.Bad++
	}
}

func TestSeqTracker(t *testing.T) {
	var tr seqTracker
	var c seqCounts
	// 0 1 2 5 3 4 4 2 6 200 199 1<<22
	seq := []uint64{0, 1, 2, 5, 3, 4, 4, 2, 6, 200, 199, maxTrackedSeq}
	want := []seqVerdict{seqNew, seqNew, seqNew, seqNew, seqOOO, seqOOO, seqDup, seqDup, seqNew, seqNew, seqOOO, seqBad}
	for i, s := range seq {
		v := tr.observe(s)
		if v != want[i] {
			t.Errorf("observe(%d) #%d = %d, want %d", s, i, v, want[i])
		}
		c.add(v)
	}
	if c.Unique != 9 || c.Dup != 2 || c.OOO != 3 || c.Bad != 1 {
		t.Errorf("counts %+v", c)
	}
	// lost = expected - unique: 0..200 sent (201), 9 unique seen
	if lost := 201 - int(c.Unique); lost != 192 {
		t.Errorf("lost = %d", lost)
	}
}

func TestSeqTrackerRandomPermutation(t *testing.T) {
	// every seq once in random order: no dups; all unique; ooo == count of
	// elements smaller than some earlier element
	const n = 5000
	perm := rand.Perm(n)
	var tr seqTracker
	var c seqCounts
	highest := -1
	wantOOO := 0
	for _, s := range perm {
		if s < highest {
			wantOOO++
		}
		highest = max(highest, s)
		c.add(tr.observe(uint64(s)))
	}
	if c.Unique != n || c.Dup != 0 || int(c.OOO) != wantOOO {
		t.Fatalf("counts %+v, want unique %d ooo %d", c, n, wantOOO)
	}
	for _, s := range perm[:10] {
		if v := tr.observe(uint64(s)); v != seqDup {
			t.Fatalf("replay of %d: verdict %d", s, v)
		}
	}
}

func TestSeqTrackerLanes(t *testing.T) {
	// three publishers: lane = seq % 3. Interleaving lanes is in order;
	// going back within a lane is not.
	tr := newSeqTracker(3)
	var c seqCounts
	seq := []uint64{2, 0, 1, 5, 3, 4, 8, 6, 7, 3, 11, 10, 9, 14, 12, 13, 17, 16, 15}
	want := []seqVerdict{
		seqNew, seqNew, seqNew, // 2 0 1: three lanes, first of each
		seqNew, seqNew, seqNew, // 5 3 4
		seqNew, seqNew, seqNew, // 8 6 7
		seqDup,                 // 3 again
		seqNew, seqNew, seqNew, // 11 10 9
		seqNew, seqNew, seqNew, // 14 12 13
		seqNew, seqNew, seqNew, // 17 16 15
	}
	for i, s := range seq {
		if v := tr.observe(s); v != want[i] {
			t.Errorf("observe(%d) #%d = %d, want %d", s, i, v, want[i])
		}
	}
	// real reorderings within a lane: 23 before 20 (lane 2), 21 after 24
	// (lane 0), 22 in order (lane 1); a replay of 20 is a dup
	for _, s := range []uint64{23, 20, 24, 21, 22, 20, maxTrackedSeq + 1} {
		c.add(tr.observe(s))
	}
	if c.Unique != 5 || c.OOO != 2 || c.Dup != 1 || c.Bad != 1 {
		t.Errorf("lanes: counts %+v, want unique 5, ooo 2, dup 1, bad 1", c)
	}
	// the same arrivals on one lane: every step back counts
	one := newSeqTracker(1)
	var c1 seqCounts
	for _, s := range seq {
		c1.add(one.observe(s))
	}
	if c1.OOO != 12 || c1.Dup != 1 {
		t.Errorf("one lane: counts %+v, want ooo 12, dup 1", c1)
	}
	// the zero value and out-of-range lane counts
	var zero seqTracker
	if zero.observe(5) != seqNew || zero.observe(4) != seqOOO {
		t.Error("zero value is not one lane")
	}
	if tr := newSeqTracker(0); tr.lanes != 1 {
		t.Errorf("newSeqTracker(0).lanes = %d", tr.lanes)
	}
	if tr := newSeqTracker(maxLanes * 4); tr.lanes != maxLanes {
		t.Errorf("newSeqTracker(big).lanes = %d", tr.lanes)
	}
}

func TestSeqTrackerLanesRandomInterleaving(t *testing.T) {
	// publishers each send their seqs k*n+p in order; a random merge of
	// them has no reordering per lane, and every seq is unique
	const n, per = 16, 300
	next := make([]int, n)
	tr := newSeqTracker(n)
	var c seqCounts
	for range n * per {
		p := rand.IntN(n)
		for next[p] == per {
			p = (p + 1) % n
		}
		c.add(tr.observe(uint64(next[p]*n + p)))
		next[p]++
	}
	if c.Unique != n*per || c.OOO != 0 || c.Dup != 0 {
		t.Fatalf("counts %+v, want unique %d and nothing else", c, n*per)
	}
}

// ---------------------------------------------------------------- loopback

func fakeLookup(m map[string][]string) lookupFunc {
	return func(ctx context.Context, host string) ([]net.IPAddr, error) {
		ips, ok := m[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		var out []net.IPAddr
		for _, s := range ips {
			out = append(out, net.IPAddr{IP: net.ParseIP(s)})
		}
		return out, nil
	}
}

func TestNormalizeTarget(t *testing.T) {
	lookup := fakeLookup(map[string][]string{
		"localhost": {"::1", "127.0.0.1"},
		"evil":      {"127.0.0.1", "10.1.2.3"},
		"six":       {"::1"},
		"far":       {"93.184.216.34"},
	})
	ok := map[string]string{
		"127.0.0.1:7800":         "http://127.0.0.1:7800",
		"http://127.0.0.1:7800/": "http://127.0.0.1:7800",
		"ws://127.0.0.5:9000":    "http://127.0.0.5:9000",
		"localhost:8000":         "http://127.0.0.1:8000",
		"http://[::1]:7800":      "http://[::1]:7800",
		"six:1":                  "http://[::1]:1",
		"127.255.255.254":        "http://127.255.255.254:80",
	}
	for in, want := range ok {
		got, err := normalizeTarget(context.Background(), in, lookup)
		if err != nil || got != want {
			t.Errorf("normalizeTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"10.0.0.1:80", "http://192.168.1.1:7800", "evil:80", "far:80", "nosuch:80",
		"http://[2001:db8::1]:80", "ftp://127.0.0.1:21", "http://127.0.0.1:7800/api", "0.0.0.0:7800", ""}
	for _, in := range bad {
		if got, err := normalizeTarget(context.Background(), in, lookup); err == nil {
			t.Errorf("normalizeTarget(%q) = %q, want an error", in, got)
		}
	}
	_, err := normalizeTarget(context.Background(), "10.0.0.1:80", lookup)
	if err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Errorf("error should say non-loopback: %v", err)
	}
}

func TestParseSrc(t *testing.T) {
	ips, err := parseSrc("127.0.0.2-127.0.0.9")
	if err != nil || len(ips) != 8 || ips[0].String() != "127.0.0.2" || ips[7].String() != "127.0.0.9" {
		t.Fatalf("range: %v %v", ips, err)
	}
	ips, err = parseSrc("127.0.0.2-4, 127.0.1.1,::1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	if !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1", "::1"}) {
		t.Errorf("list: %v", got)
	}
	if ips, err := parseSrc(""); err != nil || ips != nil {
		t.Errorf("empty: %v %v", ips, err)
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.9-127.0.0.2", "127.0.0.1-127.0.2.1", "126.255.255.255-127.0.0.1", "x", "127.0.0.1-y"} {
		if _, err := parseSrc(bad); err == nil {
			t.Errorf("parseSrc(%q): want error", bad)
		}
	}
}

// ---------------------------------------------------------------- /proc

const statFixture = "4242 (go-web (sock) et) S 1 4242 4242 0 -1 4194560 2631 0 0 0 1234 567 0 0 20 0 9 0 123456 1533730816 5120 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

const statusFixture = `Name:	go-websocket
Umask:	0022
State:	S (sleeping)
Tgid:	4242
VmPeak:	 1604356 kB
VmSize:	 1497784 kB
VmHWM:	   41236 kB
VmRSS:	   20480 kB
RssAnon:	   12000 kB
Threads:	9
`

func TestParseProc(t *testing.T) {
	ticks, err := parseStat(statFixture)
	if err != nil || ticks != 1234+567 {
		t.Fatalf("parseStat = %d, %v; want 1801", ticks, err)
	}
	rss, err := parseStatusRSS(statusFixture)
	if err != nil || rss != 20480*1024 {
		t.Fatalf("parseStatusRSS = %d, %v", rss, err)
	}
	if _, err := parseStat("4242 (x) S 1 2"); err == nil {
		t.Error("short stat accepted")
	}
	if _, err := parseStat("no parens"); err == nil {
		t.Error("stat without comm accepted")
	}
	if _, err := parseStatusRSS("Name:\tkthreadd\nState:\tS\n"); err == nil {
		t.Error("status without VmRSS accepted")
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProcs([]int{1, 1}) // pid 1 exists in any Linux container
	if err != nil {
		t.Skip("no /proc/1:", err)
	}
	one, _ := readProc(1)
	if s.RSS < one.RSS || s.RSS > 2*one.RSS+1<<20 {
		t.Errorf("sum of two readings %d vs one %d", s.RSS, one.RSS)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Error("readProc of a missing pid succeeded")
	}
	pids, err := parsePIDs("12, 34,")
	if err != nil || !slices.Equal(pids, []int{12, 34}) {
		t.Errorf("parsePIDs: %v %v", pids, err)
	}
	if _, err := parsePIDs("12,abc"); err == nil {
		t.Error("bad pid accepted")
	}
}

// ---------------------------------------------------------------- flags

func TestParseArgs(t *testing.T) {
	var out bytes.Buffer
	c, err := parseArgs([]string{"fanout", "-clients", "200", "-messages", "50", "-pid", "1,2", "-src", "127.0.0.2-9"}, &out)
	if err != nil {
		t.Fatal(err, out.String())
	}
	if c.Scenario != "fanout" || c.Clients != 200 || c.Messages != 50 || len(c.PIDs) != 2 || len(c.Srcs) != 8 || c.Duration != 60*time.Second {
		t.Errorf("parsed %+v", c)
	}
	// flags before the scenario, scenario defaults
	c, err = parseArgs([]string{"-workers", "4", "unicast"}, &out)
	if err != nil || c.Scenario != "unicast" || c.Workers != 4 || c.Clients != 2000 || c.Messages != 20000 {
		t.Errorf("unicast: %+v %v", c, err)
	}
	c, err = parseArgs([]string{"-scenario", "idle"}, &out)
	if err != nil || c.Scenario != "idle" || c.Clients != 1000 || c.Duration != 10*time.Second {
		t.Errorf("idle: %+v %v", c, err)
	}
	if c != nil && c.Publishers != 1 {
		t.Errorf("default publishers %d, want 1", c.Publishers)
	}
	c, err = parseArgs([]string{"fanout", "-publishers", "16"}, &out)
	if err != nil || c.Publishers != 16 {
		t.Errorf("publishers: %+v %v", c, err)
	}
	c, err = parseArgs([]string{"connect-churn", "-count", "100"}, &out)
	if err != nil || c.Count != 100 {
		t.Errorf("churn: %+v %v", c, err)
	}
	bad := [][]string{
		{},
		{"nosuch"},
		{"fanout", "unicast"},
		{"fanout", "-clients", "0"},
		{"fanout", "-size", "-1"},
		{"fanout", "-rate", "-5"},
		{"fanout", "-target", "nats"},
		{"fanout", "-target", "centrifugo"}, // no api key
		{"cluster", "-target", "centrifugo", "-api-key", "k", "-url", "127.0.0.1:1,127.0.0.1:2"},
		{"cluster", "-url", "127.0.0.1:1"}, // one node
		{"idle", "-duration", "3h"},
		{"idle", "-timeout", "0s"},
		{"fanout", "-pid", "x"},
		{"fanout", "-src", "10.0.0.1"},
		{"fanout", "-procs", "0"},
		{"fanout", "-publishers", "0"},
		{"fanout", "-publishers", "1025"},
		{"unicast", "-publishers", "2"},
		{"fanout", "-bogus"},
	}
	for _, args := range bad {
		out.Reset()
		if c, err := parseArgs(args, &out); err == nil {
			t.Errorf("parseArgs(%q) = %+v, want error", args, c)
		}
	}
	out.Reset()
	if _, err := parseArgs([]string{"-help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-help: %v", err)
	}
	if !strings.Contains(out.String(), "GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=bench") || !strings.Contains(out.String(), "Examples:") {
		t.Error("help lacks the events hint or the examples")
	}
	// procs never exceeds clients
	c, err = parseArgs([]string{"fanout", "-clients", "3", "-procs", "8"}, &out)
	if err != nil || c.Procs != 3 {
		t.Errorf("procs clamp: %+v %v", c, err)
	}
}

// every flag is shown, in a group, in -help
func TestHelpListsEveryFlag(t *testing.T) {
	var c Config
	fs := newFlagSet(&c)
	var out bytes.Buffer
	printUsage(&out, fs)
	grouped := map[string]bool{}
	for _, g := range flagGroups {
		for _, n := range g.names {
			grouped[n] = true
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !grouped[f.Name] {
			t.Errorf("flag -%s is in no help group", f.Name)
		}
		if !strings.Contains(out.String(), "    -"+f.Name+" ") {
			t.Errorf("flag -%s missing from the help text", f.Name)
		}
	})
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "    -") && len(line) > usageWidth+4 {
			t.Errorf("help line too long (%d): %s", len(line), line)
		}
	}
}

func TestSplitCountAndWrap(t *testing.T) {
	if got := splitCount(10, 3); !slices.Equal(got, []int{4, 3, 3}) {
		t.Errorf("splitCount(10,3) = %v", got)
	}
	if got := splitCount(2, 4); !slices.Equal(got, []int{1, 1, 0, 0}) {
		t.Errorf("splitCount(2,4) = %v", got)
	}
	lines := wrapWords("aaa bbb ccc dddddddddd e", 7)
	if !slices.Equal(lines, []string{"aaa bbb", "ccc", "dddddddddd", "e"}) {
		t.Errorf("wrap: %q", lines)
	}
}

func TestWSURL(t *testing.T) {
	if got := wsURL("gows", "http://127.0.0.1:7800", "bench sys", ""); got != "ws://127.0.0.1:7800/api/websocket/ws?systemId=bench+sys" {
		t.Errorf("gows: %s", got)
	}
	if got := wsURL("gows", "http://127.0.0.1:7800", "b", "t.o.k"); got != "ws://127.0.0.1:7800/api/websocket/ws?systemId=b&token=t.o.k" {
		t.Errorf("gows token: %s", got)
	}
	if got := wsURL("centrifugo", "https://[::1]:8000", "b", ""); got != "wss://[::1]:8000/connection/websocket" {
		t.Errorf("centrifugo: %s", got)
	}
}

func TestReportJSON(t *testing.T) {
	rep := newReport("t")
	rep.set("x", 1.23456)
	rep.set("nan", math.NaN())
	rep.latency("lat", "lat", HistData{})
	var out bytes.Buffer
	rep.print(&out)
	line := out.String()[strings.Index(out.String(), "RESULT ")+7:]
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("RESULT line is not JSON: %v: %s", err, line)
	}
	if m["x"] != 1.235 || m["nan"] != nil {
		t.Errorf("fields: %v", m)
	}
}
