package main

import (
	"bufio"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// roomPhase (cluster scenario, -room N): binds every connected client into
// two rooms of N, through another node than its own: a "spread" room
// (consecutive clients, so members on every node) and a "placed" room
// (members of one node, as a load balancer hashing on the room would
// place them). It then sends one send_to_group per room through the nodes
// in turn and lists rooms one call at a time, and reports etcd writes per
// bind, RPCs per send_to_group of each layout and get_online_list latency,
// read from the nodes' metrics.
func (r *runner) roomPhase(rep *report, ids []string) {
	size, nodes := r.cfg.RoomSize, len(r.urls)
	rooms := len(ids) / size
	if rooms == 0 {
		return
	}
	perNode := (len(ids)/nodes + size - 1) / size
	spread := func(i int) string { return "spread-" + strconv.Itoa(i/size) }
	placed := func(i int) string { return "placed-" + strconv.Itoa((i%nodes)*perNode+(i/nodes)/size) }
	w0 := r.metricSum("gows_presence_etcd_writes_total", "")
	t0 := r.metricSum("gows_presence_etcd_txns_total", "")
	var failed, binds atomic.Int64
	start := time.Now()
	r.parallel(len(ids), 16, func(ctx context.Context, i int) {
		if ids[i] == "" {
			return
		}
		for _, g := range []string{spread(i), placed(i)} {
			if err := r.api.Bind(ctx, r.urls[(i+1)%nodes], ids[i], g); err != nil {
				failed.Add(1)
			}
			binds.Add(1)
		}
	})
	bindTook := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let the last window's writes land
	writes := r.metricSum("gows_presence_etcd_writes_total", "") - w0
	txns := r.metricSum("gows_presence_etcd_txns_total", "") - t0
	rep.row("rooms", "%d binds into %d spread and %d placed rooms of %d in %s (through another node than the client's), %d failed",
		binds.Load(), rooms, rooms, size, fmtDur(bindTook), failed.Load())
	rep.row("etcd writes", "%.2f per bind (%.0f writes in %.0f transactions)", writes/float64(max(binds.Load(), 1)), writes, txns)
	rep.set("room_etcd_writes_per_bind", writes/float64(max(binds.Load(), 1)))

	// names[k] of the placed layout belongs to node k%nodes (clients are
	// spread over the nodes in turn), so shift picks the API node: 0 the
	// room's own node, 1 another one.
	for _, layout := range []struct {
		name  string
		room  func(int) string
		shift int
	}{{"spread", spread, 1}, {"placed, via the room's node", placed, 0}, {"placed, via another node", placed, 1}} {
		rpc0 := r.metricSum("gows_rpc_calls_total", `method="broadcast"`)
		var recipients atomic.Int64
		sends := 0
		seen := map[string]bool{}
		var names []string
		for i := range ids {
			if g := layout.room(i); !seen[g] {
				seen[g] = true
				names = append(names, g)
			}
		}
		sends = len(names)
		r.parallel(sends, 16, func(ctx context.Context, i int) {
			n, err := r.api.SendToGroup(ctx, r.urls[(i+layout.shift)%nodes], names[i], []byte(`"room"`))
			if err != nil {
				failed.Add(1)
			}
			recipients.Add(int64(n))
		})
		rpcs := r.metricSum("gows_rpc_calls_total", `method="broadcast"`) - rpc0
		rep.row("send_to_group "+layout.name, "%.2f RPCs per send (%d sends, %d recipients; all-node fan-out: %d)",
			rpcs/float64(sends), sends, recipients.Load(), nodes-1)
		rep.set("room_rpcs_per_send_"+strings.NewReplacer(", via the room's node", "_local", ", via another node", "_remote").Replace(layout.name), rpcs/float64(sends))
	}

	lists := min(1000, rooms*4)
	lat := make([]time.Duration, lists)
	r.parallel(lists, 1, func(ctx context.Context, i int) {
		body := []byte(`{"groupName":"` + spread(i%rooms*size) + `"}`)
		t := time.Now()
		if _, err := r.api.gows(ctx, r.urls[i%nodes], "get_online_list", body); err != nil {
			failed.Add(1)
		}
		lat[i] = time.Since(t)
	})
	slices.Sort(lat)
	rep.row("get_online_list", "p50 %s, p99 %s (%d sequential calls, a room of %d each)",
		fmtDur(lat[len(lat)/2]), fmtDur(lat[len(lat)*99/100]), lists, size)
	rep.set("room_list_p99_ms", float64(lat[len(lat)*99/100].Microseconds())/1000)
	rep.set("room_failed_calls", failed.Load())
}

// parallel runs fn(0..n-1) on workers goroutines.
func (r *runner) parallel(n, workers int, fn func(ctx context.Context, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || r.ctx.Err() != nil {
					return
				}
				ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
				fn(ctx, i)
				cancel()
			}
		}()
	}
	wg.Wait()
}

// metricSum adds up a metric over every node's /metrics, over the series
// whose labels contain match ("" = all).
func (r *runner) metricSum(name, match string) float64 {
	total := 0.0
	for _, u := range r.urls {
		resp, err := r.api.hc.Get(u + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
				continue
			}
			if match != "" && !strings.Contains(line, match) {
				continue
			}
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				total += v
			}
		}
		resp.Body.Close()
	}
	return total
}
