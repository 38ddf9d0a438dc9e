package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// publishStats is what a publishing phase did.
type publishStats struct {
	sent       int64 // accepted by the server
	failed     int64
	recipients int64 // sum of "recipients" answers (gows broadcasts)
	errs       map[string]int64
	firstErr   string
	apiLat     HistData
	start, end time.Time
}

func (ps *publishStats) fail(err error) {
	ps.failed++
	if ps.errs == nil {
		ps.errs = map[string]int64{}
	}
	ps.errs[errKey(err)]++
	if ps.firstErr == "" {
		ps.firstErr = err.Error()
	}
}

func (ps *publishStats) merge(o *publishStats) {
	ps.sent += o.sent
	ps.failed += o.failed
	ps.recipients += o.recipients
	if o.errs != nil && ps.errs == nil {
		ps.errs = map[string]int64{}
	}
	for k, v := range o.errs {
		ps.errs[k] += v
	}
	if ps.firstErr == "" {
		ps.firstErr = o.firstErr
	}
	ps.apiLat.Merge(o.apiLat)
}

// broadcast publishes n messages (seq seq0..seq0+n-1) one after another
// with publish(data) -> recipients, at -rate, for at most -duration.
func (r *runner) broadcast(label string, n int, seq0 uint64, publish func(ctx context.Context, data []byte) (int, error)) *publishStats {
	return r.broadcastConcurrent(label, n, seq0, 1, publish)
}

// broadcastConcurrent publishes n messages from `publishers` goroutines at
// once (the HTTP client gives each call in flight its own keep-alive
// connection), each at -rate/publishers, for at most -duration. Publisher p
// sends seqs seq0+p, seq0+p+publishers, seq0+p+2*publishers, ... one after
// another, so a receiver that tracks order per lane (seq % publishers, with
// seq0 a multiple of publishers) sees each publisher's messages in order.
func (r *runner) broadcastConcurrent(label string, n int, seq0 uint64, publishers int, publish func(ctx context.Context, data []byte) (int, error)) *publishStats {
	publishers = max(publishers, 1)
	ps := &publishStats{start: time.Now()}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Duration)
	defer cancel()
	var lat Hist
	var sent atomic.Int64
	r.prog.phase(rateStatus(label, sent.Load, func(k int64) string {
		p := r.progress()
		return fmt.Sprintf("sent %d/%d  recv %d  dup %d  ooo %d  dropped %d", k, n, p.Unique, p.Dup, p.OOO, p.Dropped)
	}))
	counts := splitCount(n, publishers)
	results := make([]*publishStats, publishers)
	var wg sync.WaitGroup
	for pub := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &publishStats{}
			results[pub] = st
			p := newPacer(r.cfg.Rate / float64(publishers))
			buf := make([]byte, 0, r.cfg.Size+64)
			for k := range counts[pub] {
				if !p.wait(ctx) {
					return
				}
				now := time.Now()
				seq := seq0 + uint64(k)*uint64(publishers) + uint64(pub)
				buf = appendPayload(buf[:0], r.run, seq, now.UnixNano(), r.cfg.Size)
				callCtx, callCancel := context.WithTimeout(ctx, 10*time.Second)
				rec, err := publish(callCtx, buf)
				callCancel()
				lat.Record(int64(time.Since(now)))
				if err != nil {
					if ended(ctx) {
						return
					}
					st.fail(err)
					continue
				}
				st.recipients += int64(rec)
				st.sent++
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	ps.end = time.Now()
	for _, st := range results {
		ps.merge(st)
	}
	ps.apiLat = lat.Snapshot(false)
	return ps
}

// unicastPhase sends n unicast messages from -workers workers. Each client
// is owned by one worker, which numbers that client's messages from seq0,
// so that every client must see its messages in order. With cross, the API
// call goes to the next node after the client's own one.
func (r *runner) unicastPhase(label string, ids []string, n int, seq0 uint64, cross bool) *publishStats {
	var targets []int
	for i, id := range ids {
		if id != "" {
			targets = append(targets, i)
		}
	}
	ps := &publishStats{start: time.Now()}
	if len(targets) == 0 || n == 0 {
		ps.end = ps.start
		return ps
	}
	workers := min(r.cfg.Workers, len(targets))
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Duration)
	defer cancel()
	var sent atomic.Int64
	var lat Hist
	r.prog.phase(rateStatus(label, sent.Load, func(k int64) string {
		p := r.progress()
		return fmt.Sprintf("sent %d/%d  recv %d  dup %d  ooo %d  dropped %d", k, n, p.Unique, p.Dup, p.OOO, p.Dropped)
	}))
	nodes := len(r.urls)
	counts := splitCount(n, workers)
	results := make([]*publishStats, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &publishStats{}
			results[w] = st
			var mine []int
			for j := w; j < len(targets); j += workers {
				mine = append(mine, targets[j])
			}
			seqs := make([]uint64, len(mine))
			for j := range seqs {
				seqs[j] = seq0
			}
			p := newPacer(r.cfg.Rate / float64(workers))
			buf := make([]byte, 0, r.cfg.Size+64)
			for k := range counts[w] {
				if !p.wait(ctx) {
					return
				}
				j := k % len(mine)
				idx := mine[j]
				node := idx % nodes
				if cross {
					node = (node + 1) % nodes
				}
				now := time.Now()
				buf = appendPayload(buf[:0], r.run, seqs[j], now.UnixNano(), r.cfg.Size)
				seqs[j]++ // consumed even if the call fails: a retry would look like a duplicate
				callCtx, callCancel := context.WithTimeout(ctx, 10*time.Second)
				err := r.api.Push(callCtx, r.urls[node], idx, ids[idx], buf)
				callCancel()
				lat.Record(int64(time.Since(now)))
				if err != nil {
					if ended(ctx) {
						return
					}
					st.fail(err)
					continue
				}
				st.sent++
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	ps.end = time.Now()
	for _, st := range results {
		ps.merge(st)
	}
	ps.apiLat = lat.Snapshot(false)
	return ps
}

func (r *runner) header(rep *report) {
	nodes := strings.Join(r.urls, ", ")
	rep.row("target", "%s at %s", r.cfg.Target, nodes)
	src := "default"
	if len(r.cfg.Srcs) > 0 {
		src = fmt.Sprintf("%d addresses (%s..%s)", len(r.cfg.Srcs), r.cfg.Srcs[0], r.cfg.Srcs[len(r.cfg.Srcs)-1])
	}
	rep.row("load", "%d client process(es), source %s, run id %s", r.cfg.Procs, src, r.run)
	rep.set("scenario", r.cfg.Scenario)
	rep.set("target", r.cfg.Target)
	rep.set("nodes", len(r.urls))
	rep.set("urls", r.urls)
	rep.set("run", r.run)
	rep.set("procs", r.cfg.Procs)
	rep.set("src_addrs", len(r.cfg.Srcs))
	rep.set("size", r.cfg.Size)
	if len(r.cfg.PIDs) > 0 {
		rep.set("pids", r.cfg.PIDs)
	}
}

func (r *runner) connRows(rep *report, ready readyAll, res ShardResult) {
	clients := len(ready.ids)
	rep.row("clients", "%d connected of %d (%d failed) in %s, %s connects/s",
		ready.connected, clients, res.ConnErrors, fmtDur(ready.connectTime), fmtRate(perSec(int64(ready.connected), ready.connectTime)))
	rep.set("clients", clients)
	rep.set("connected", ready.connected)
	rep.set("conn_errors", res.ConnErrors)
	rep.set("connect_s", ready.connectTime.Seconds())
	rep.latency("connect latency", "connect", res.ConnLat)
	if len(res.Errors) > 0 {
		rep.errors("client errors", "client_errors", res.Errors)
	}
	dropRow := fmt.Sprintf("%d", res.Dropped)
	if len(res.CloseCodes) > 0 {
		keys := make([]string, 0, len(res.CloseCodes))
		for k := range res.CloseCodes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, res.CloseCodes[k]))
		}
		dropRow += " (close codes " + strings.Join(parts, ", ") + ")"
		rep.set("close_codes", res.CloseCodes)
	}
	rep.row("dropped by server", "%s", dropRow)
	rep.set("dropped", res.Dropped)
}

// deliveryRows reports delivery accounting; it returns whether anything
// was lost, duplicated or reordered.
func deliveryRows(rep *report, prefix string, expected int64, res ShardResult) bool {
	lost := max(expected-res.Unique, 0)
	extra := max(res.Unique-expected, 0)
	rep.row(lbl(prefix, "deliveries"), "%d of %d expected", res.Unique, expected)
	rep.row(lbl(prefix, "lost/dup/ooo"), "%d / %d / %d", lost, res.Dup, res.OOO)
	rep.set(prefix+"expected", expected)
	rep.set(prefix+"delivered", res.Unique)
	rep.set(prefix+"lost", lost)
	rep.set(prefix+"dup", res.Dup)
	rep.set(prefix+"ooo", res.OOO)
	if extra > 0 {
		rep.note("%d more deliveries than accepted publishes (a publish that failed on the client side was delivered anyway?)", extra)
	}
	if res.Events+res.Foreign+res.Other+res.BadSeq > 0 {
		rep.row(lbl(prefix, "other frames"), "%d membership events, %d of another run, %d unrecognised", res.Events, res.Foreign, res.Other+res.BadSeq)
	}
	rep.set(prefix+"events", res.Events)
	rep.set(prefix+"foreign", res.Foreign)
	rep.set(prefix+"other", res.Other+res.BadSeq)
	return lost > 0 || res.Dup > 0 || res.OOO > 0
}

// lbl turns a JSON key prefix into a table label prefix.
func lbl(prefix, s string) string {
	switch prefix {
	case "sys_":
		return "system " + s
	case "uni_":
		return "unicast " + s
	}
	return s
}

func (r *runner) publishRows(rep *report, prefix string, ps *publishStats, want int) {
	if done := ps.sent + ps.failed; done < int64(want) && r.ctx.Err() == nil {
		rep.note("%spublishing stopped after %d of %d calls: -duration %s reached (raise it for long or rate-limited runs)",
			lbl(prefix, ""), done, want, r.cfg.Duration)
	}
	rep.latency(lbl(prefix, "API call"), prefix+"api", ps.apiLat)
	if ps.failed > 0 {
		rep.errors(lbl(prefix, "API errors"), prefix+"api_errors", ps.errs)
		rep.note("first %sAPI error: %s", prefix, ps.firstErr)
	} else {
		rep.set(prefix+"api_errors", 0)
	}
}

// serverRows reports the server's CPU over a window and per unit.
func (r *runner) serverRows(rep *report, before, after procSample, ok bool, window time.Duration, units int64, unit string, showRSS bool) {
	if !ok {
		return
	}
	cpu := after.CPU - before.CPU
	perUnit := 0.0
	if units > 0 {
		perUnit = float64(cpu.Microseconds()) / float64(units)
	}
	rep.row("server CPU", "%s over %s (%.0f%% of a core), %.2f us per %s",
		fmtDur(cpu), fmtDur(window), 100*cpu.Seconds()/max(window.Seconds(), 1e-9), perUnit, unit)
	if showRSS {
		rep.row("server RSS", "%s", fmtBytes(float64(after.RSS)))
		rep.set("server_rss_bytes", after.RSS)
	}
	rep.set("server_cpu_s", cpu.Seconds())
	rep.set("server_cpu_pct", 100*cpu.Seconds()/max(window.Seconds(), 1e-9))
	rep.set("cpu_us_per_"+unit, perUnit)
}

func (r *runner) toolRow(rep *report, elapsed time.Duration) {
	cpu := r.toolCPU()
	rep.row("wsbench CPU", "%s (%.0f%% of a core over the run)", fmtDur(cpu), 100*cpu.Seconds()/max(elapsed.Seconds(), 1e-9))
	rep.set("tool_cpu_s", cpu.Seconds())
	self, child := peakRSS()
	if r.cfg.Procs > 1 {
		rep.row("wsbench peak RSS", "%s coordinator, %s largest client process", fmtBytes(float64(self)), fmtBytes(float64(child)))
		rep.set("tool_peak_rss_bytes", child)
	} else {
		rep.row("wsbench peak RSS", "%s", fmtBytes(float64(self)))
		rep.set("tool_peak_rss_bytes", self)
	}
}

func (r *runner) eventsNote(rep *report, res ShardResult) {
	if res.Events > 0 && r.cfg.Target == "gows" {
		rep.note("the server sent %d membership events (code 1001/1002, not counted); start it with GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=%s to measure fanout alone",
			res.Events, r.cfg.System)
	}
}

// ---------------------------------------------------------------- fanout

func (r *runner) fanout() (*report, bool, error) {
	started := time.Now()
	publishers := max(r.cfg.Publishers, 1)
	rep := newReport(fmt.Sprintf("wsbench fanout: 1 group x %d clients, %d messages of %d bytes, %d publisher(s)",
		r.cfg.Clients, r.cfg.Messages, r.cfg.Size, publishers))
	r.header(rep)
	if err := r.register(); err != nil {
		return nil, false, err
	}
	if err := r.startShards("hold", r.cfg.Clients, r.cfg.Group, false); err != nil {
		return nil, false, err
	}
	ready, err := r.waitReady(r.cfg.Clients)
	if err != nil {
		r.stopAll()
		return nil, false, err
	}
	members := int64(ready.bound)
	if members == 0 {
		res, _ := r.stopAll()
		r.connRows(rep, ready, res)
		return rep, true, fmt.Errorf("no client joined the group (connected %d)", ready.connected)
	}
	before, ok := r.sample()
	ps := r.broadcastConcurrent("fanout", r.cfg.Messages, 0, publishers, func(ctx context.Context, data []byte) (int, error) {
		if r.cfg.Target == "centrifugo" {
			return 0, r.api.Publish(ctx, r.urls[0], r.cfg.Group, data)
		}
		return r.api.SendToGroup(ctx, r.urls[0], r.cfg.Group, data)
	})
	expected := ps.sent * members
	r.prog.phase(func() string {
		p := r.progress()
		return fmt.Sprintf("draining  recv %d/%d", p.Unique, expected)
	})
	complete := r.waitDeliveries(expected, ps.end)
	after, ok2 := r.sample()
	r.prog.phase(nil)
	res, stopErr := r.stopAll()

	r.connRows(rep, ready, res)
	rep.row("group", "%q: %d members (%d bind errors)", r.cfg.Group, members, res.BindErrors)
	rep.set("members", members)
	rep.set("bind_errors", res.BindErrors)
	how := "one after another"
	if publishers > 1 {
		how = fmt.Sprintf("by %d concurrent publishers", publishers)
	}
	rep.row("published", "%d of %d messages in %s (%s msg/s), %s", ps.sent, r.cfg.Messages, fmtDur(ps.end.Sub(ps.start)), fmtRate(perSec(ps.sent, ps.end.Sub(ps.start))), how)
	rep.set("messages", ps.sent)
	rep.set("publishers", publishers)
	if r.cfg.Target == "gows" {
		rep.row("recipients", "%d reported by send_to_group (%d expected)", ps.recipients, expected)
		rep.set("recipients", ps.recipients)
	}
	bad := deliveryRows(rep, "", expected, res)
	window := time.Duration(res.LastRecv - ps.start.UnixNano())
	if res.LastRecv == 0 || window <= 0 {
		window = time.Since(ps.start)
	}
	rep.row("window", "%s (first publish to last delivery)", fmtDur(window))
	rep.row("deliveries/s", "%s", fmtRate(perSec(res.Unique, window)))
	rep.set("window_s", window.Seconds())
	rep.set("deliveries_per_s", perSec(res.Unique, window))
	rep.latency("latency", "lat", res.Lat)
	r.publishRows(rep, "", ps, r.cfg.Messages)
	r.serverRows(rep, before, after, ok && ok2, time.Since(ps.start), res.Unique, "delivery", true)
	r.toolRow(rep, time.Since(started))
	r.eventsNote(rep, res)
	if !complete {
		rep.note("not every delivery arrived within -drain %s after the last publish", r.cfg.Drain)
	}
	failed := bad || res.ConnErrors > 0 || res.BindErrors > 0 || res.Dropped > 0 || ps.failed > 0 || ps.sent < int64(r.cfg.Messages)
	return rep, failed, stopErr
}

// ---------------------------------------------------------------- unicast

func (r *runner) unicast() (*report, bool, error) {
	started := time.Now()
	rep := newReport(fmt.Sprintf("wsbench unicast: %d clients, %d messages of %d bytes, %d workers", r.cfg.Clients, r.cfg.Messages, r.cfg.Size, r.cfg.Workers))
	r.header(rep)
	if err := r.register(); err != nil {
		return nil, false, err
	}
	if err := r.startShards("hold", r.cfg.Clients, "", r.cfg.Target == "centrifugo"); err != nil {
		return nil, false, err
	}
	ready, err := r.waitReady(r.cfg.Clients)
	if err != nil {
		r.stopAll()
		return nil, false, err
	}
	if ready.connected == 0 {
		res, _ := r.stopAll()
		r.connRows(rep, ready, res)
		return rep, true, fmt.Errorf("no client connected")
	}
	cross := r.cfg.Cross && len(r.urls) > 1
	before, ok := r.sample()
	ps := r.unicastPhase("unicast", ready.ids, r.cfg.Messages, 0, cross)
	r.prog.phase(func() string {
		p := r.progress()
		return fmt.Sprintf("draining  recv %d/%d", p.Unique, ps.sent)
	})
	complete := r.waitDeliveries(ps.sent, ps.end)
	after, ok2 := r.sample()
	r.prog.phase(nil)
	res, stopErr := r.stopAll()

	r.connRows(rep, ready, res)
	failed := r.unicastRows(rep, "", ps, res, cross)
	r.serverRows(rep, before, after, ok && ok2, time.Since(ps.start), ps.sent, "message", true)
	r.toolRow(rep, time.Since(started))
	if !complete {
		rep.note("not every message arrived within -drain %s after the last call", r.cfg.Drain)
	}
	failed = failed || res.ConnErrors > 0 || res.Dropped > 0
	r.ackNote(rep)
	return rep, failed, stopErr
}

func (r *runner) unicastRows(rep *report, prefix string, ps *publishStats, res ShardResult, cross bool) bool {
	cfg := r.cfg
	d := ps.end.Sub(ps.start)
	mode := "max rate"
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("target %s req/s", fmtRate(cfg.Rate))
	}
	where := "the client's node"
	if cross {
		where = "another node than the client's"
	}
	rep.row(lbl(prefix, "requests"), "%d of %d accepted in %s: %s req/s (%s, API on %s)",
		ps.sent, cfg.Messages, fmtDur(d), fmtRate(perSec(ps.sent, d)), mode, where)
	rep.set(prefix+"requests", ps.sent)
	rep.set(prefix+"req_per_s", perSec(ps.sent, d))
	rep.set(prefix+"target_rate", cfg.Rate)
	bad := deliveryRows(rep, prefix, ps.sent, res)
	rep.latency(lbl(prefix, "latency"), prefix+"lat", res.Lat)
	r.publishRows(rep, prefix, ps, cfg.Messages)
	return bad || ps.failed > 0 || ps.sent < int64(cfg.Messages)
}

// ---------------------------------------------------------------- cluster

func (r *runner) cluster() (*report, bool, error) {
	started := time.Now()
	rep := newReport(fmt.Sprintf("wsbench cluster: %d nodes, %d clients, %d send_to_system + %d cross-node send_to_client",
		len(r.urls), r.cfg.Clients, r.cfg.Broadcasts, r.cfg.Messages))
	r.header(rep)
	if err := r.register(); err != nil {
		return nil, false, err
	}
	if err := r.startShards("hold", r.cfg.Clients, "", false); err != nil {
		return nil, false, err
	}
	ready, err := r.waitReady(r.cfg.Clients)
	if err != nil {
		r.stopAll()
		return nil, false, err
	}
	if ready.connected == 0 {
		res, _ := r.stopAll()
		r.connRows(rep, ready, res)
		return rep, true, fmt.Errorf("no client connected")
	}
	seen := map[string]bool{}
	for _, u := range r.urls {
		if seen[u] {
			rep.note("%s is listed more than once in -url: calls between those entries are not cross-node", u)
		}
		seen[u] = true
	}
	perNode := make([]int, len(r.urls))
	for i, id := range ready.ids {
		if id != "" {
			perNode[i%len(r.urls)]++
		}
	}

	// phase 1: send_to_system on the first node reaches every client
	before, ok := r.sample()
	bs := r.broadcast("send_to_system", r.cfg.Broadcasts, 0, func(ctx context.Context, data []byte) (int, error) {
		return r.api.SendToSystem(ctx, r.urls[0], data)
	})
	expected1 := bs.sent * int64(ready.connected)
	r.prog.phase(func() string {
		p := r.progress()
		return fmt.Sprintf("draining  recv %d/%d", p.Unique, expected1)
	})
	complete1 := r.waitDeliveries(expected1, bs.end)
	res1, err := r.snapshotAll(true)
	if err != nil {
		r.stopAll()
		return nil, false, err
	}

	// phase 2: send_to_client, API on another node than the client's
	mid, ok2 := r.sample()
	us := r.unicastPhase("cross-node unicast", ready.ids, r.cfg.Messages, uint64(r.cfg.Broadcasts), true)
	r.prog.phase(func() string {
		p := r.progress()
		return fmt.Sprintf("draining  recv %d/%d", p.Unique, us.sent)
	})
	complete2 := r.waitDeliveries(us.sent, us.end)
	after, ok3 := r.sample()
	r.prog.phase(nil)
	if r.cfg.RoomSize > 0 {
		r.roomPhase(rep, ready.ids)
	}
	res2, stopErr := r.stopAll()

	var all ShardResult
	all.merge(res2)
	r.connRows(rep, ready, all)
	parts := make([]string, len(perNode))
	for i, n := range perNode {
		parts[i] = fmt.Sprintf("%d", n)
	}
	rep.row("clients per node", "%s", strings.Join(parts, " / "))
	rep.set("clients_per_node", perNode)

	rep.row("system sent", "%d send_to_system on node 1, recipients reported %d (expected %d)", bs.sent, bs.recipients, expected1)
	rep.set("sys_recipients", bs.recipients)
	bad1 := deliveryRows(rep, "sys_", expected1, res1)
	rep.latency(lbl("sys_", "latency"), "sys_lat", res1.Lat)
	r.publishRows(rep, "sys_", bs, r.cfg.Broadcasts)
	if bs.recipients != expected1 {
		rep.note("send_to_system reported %d recipients, %d clients were connected", bs.recipients, expected1)
	}

	bad2 := r.unicastRows(rep, "uni_", us, res2, true)
	if ok && ok2 && ok3 {
		cpu1 := mid.CPU - before.CPU
		cpu2 := after.CPU - mid.CPU
		per1 := float64(cpu1.Microseconds()) / float64(max(res1.Unique, 1))
		per2 := float64(cpu2.Microseconds()) / float64(max(us.sent, 1))
		rep.row("server CPU", "send_to_system phase %s (%.2f us per delivery), unicast phase %s (%.2f us per message, all nodes)",
			fmtDur(cpu1), per1, fmtDur(cpu2), per2)
		rep.row("server RSS", "%s (all nodes)", fmtBytes(float64(after.RSS)))
		rep.set("sys_server_cpu_s", cpu1.Seconds())
		rep.set("sys_cpu_us_per_delivery", per1)
		rep.set("uni_server_cpu_s", cpu2.Seconds())
		rep.set("uni_cpu_us_per_message", per2)
		rep.set("server_rss_bytes", after.RSS)
	}
	r.toolRow(rep, time.Since(started))
	r.eventsNote(rep, all)
	if !complete1 || !complete2 {
		rep.note("not every message arrived within -drain %s", r.cfg.Drain)
	}
	failed := bad1 || bad2 || bs.failed > 0 || all.ConnErrors > 0 || all.Dropped > 0
	return rep, failed, stopErr
}

// ---------------------------------------------------------------- idle

func (r *runner) idle() (*report, bool, error) {
	started := time.Now()
	rep := newReport(fmt.Sprintf("wsbench idle: %d connections held for %s", r.cfg.Clients, r.cfg.Duration))
	r.header(rep)
	if err := r.register(); err != nil {
		return nil, false, err
	}
	before, ok := r.sample()
	if err := r.startShards("hold", r.cfg.Clients, "", false); err != nil {
		return nil, false, err
	}
	ready, err := r.waitReady(r.cfg.Clients)
	if err != nil {
		r.stopAll()
		return nil, false, err
	}
	connected, ok1 := r.sample()
	r.prog.phase(func() string { return fmt.Sprintf("settling %s", r.cfg.Settle) })
	r.sleep(r.cfg.Settle)
	settled, ok2 := r.sample()

	holdStart := time.Now()
	r.prog.phase(func() string {
		p := r.progress()
		s := fmt.Sprintf("holding %s/%s  conns %d  dropped %d", time.Since(holdStart).Truncate(time.Second), r.cfg.Duration, p.Connected-p.Dropped, p.Dropped)
		if cur, ok := r.sample(); ok {
			s += "  server RSS " + fmtBytes(float64(cur.RSS))
		}
		return s
	})
	r.sleep(r.cfg.Duration)
	held := time.Since(holdStart)
	end, ok3 := r.sample()
	r.prog.phase(nil)
	res, stopErr := r.stopAll()

	r.connRows(rep, ready, res)
	rep.row("held", "%s, %d still connected at the end", fmtDur(held), int64(ready.connected)-res.Dropped)
	rep.set("held_s", held.Seconds())
	n := int64(max(ready.connected, 1))
	if ok && ok1 && ok2 && ok3 {
		perConn := (float64(settled.RSS) - float64(before.RSS)) / float64(n)
		perConnEnd := (float64(end.RSS) - float64(before.RSS)) / float64(n)
		rep.row("server RSS", "%s before, %s after connecting (+%s settle), %s at the end of the hold",
			fmtBytes(float64(before.RSS)), fmtBytes(float64(settled.RSS)), r.cfg.Settle, fmtBytes(float64(end.RSS)))
		rep.row("RSS per connection", "%s (after settle), %s (end of hold)", fmtBytes(perConn), fmtBytes(perConnEnd))
		connCPU := connected.CPU - before.CPU
		idleCPU := end.CPU - settled.CPU
		rep.row("server CPU", "%s to connect (%.1f us per connect), %s while idle (%.2f%% of a core)",
			fmtDur(connCPU), float64(connCPU.Microseconds())/float64(n), fmtDur(idleCPU), 100*idleCPU.Seconds()/max(held.Seconds(), 1e-9))
		rep.set("rss_before_bytes", before.RSS)
		rep.set("rss_after_bytes", settled.RSS)
		rep.set("rss_end_bytes", end.RSS)
		rep.set("rss_per_conn_bytes", perConn)
		rep.set("rss_per_conn_end_bytes", perConnEnd)
		rep.set("cpu_us_per_connect", float64(connCPU.Microseconds())/float64(n))
		rep.set("idle_cpu_pct", 100*idleCPU.Seconds()/max(held.Seconds(), 1e-9))
	}
	r.toolRow(rep, time.Since(started))
	failed := res.ConnErrors > 0 || res.Dropped > 0
	return rep, failed, stopErr
}

// ---------------------------------------------------------------- churn

func (r *runner) churn() (*report, bool, error) {
	started := time.Now()
	limit := "no count limit"
	if r.cfg.Count > 0 {
		limit = fmt.Sprintf("at most %d connects", r.cfg.Count)
	}
	rep := newReport(fmt.Sprintf("wsbench connect-churn: %d loops x %d process(es) for %s, %s", r.cfg.Concurrency, r.cfg.Procs, r.cfg.Duration, limit))
	r.header(rep)
	if err := r.register(); err != nil {
		return nil, false, err
	}
	before, ok := r.sample()
	t0 := time.Now()
	if err := r.startShards("churn", 0, "", false); err != nil {
		return nil, false, err
	}
	r.prog.phase(rateStatus("churn", func() int64 { return r.progress().Churned }, func(n int64) string {
		return fmt.Sprintf("connects %d  errors %d", n, r.progress().ChurnErrors)
	}))
	end := t0.Add(r.cfg.Duration + 15*time.Second)
	for !r.progress().Done && time.Now().Before(end) {
		if !r.sleep(20 * time.Millisecond) {
			break
		}
	}
	elapsed := time.Since(t0)
	after, ok2 := r.sample()
	r.prog.phase(nil)
	res, stopErr := r.stopAll()
	// let the server finish its clean-up before the "after" RSS
	r.sleep(min(r.cfg.Settle, time.Second))
	settled, ok3 := r.sample()

	rep.row("connects", "%d in %s: %s connects/s", res.Churned, fmtDur(elapsed), fmtRate(perSec(res.Churned, elapsed)))
	rep.set("connects", res.Churned)
	rep.set("connects_per_s", perSec(res.Churned, elapsed))
	rep.set("elapsed_s", elapsed.Seconds())
	rep.errors("errors", "errors", res.Errors)
	rep.latency("connect latency", "connect", res.ConnLat)
	r.serverRows(rep, before, after, ok && ok2, elapsed, res.Churned, "connect", false)
	if ok && ok3 {
		rep.row("server RSS", "%s before, %s after (growth %s)", fmtBytes(float64(before.RSS)), fmtBytes(float64(settled.RSS)),
			fmtBytes(float64(settled.RSS)-float64(before.RSS)))
		rep.set("rss_before_bytes", before.RSS)
		rep.set("server_rss_bytes", settled.RSS)
	}
	r.toolRow(rep, time.Since(started))
	return rep, res.ChurnErrors > 0, stopErr
}
