package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"
)

// Config is everything a run needs, from the command line.
type Config struct {
	Scenario string

	// target
	Target       string // "gows" or "centrifugo"
	URLList      string // comma list of base URLs
	System       string
	Token        string // gows API token (Authorization: Bearer)
	ConnectToken string // gows connect token (?token=)
	APIKey       string // centrifugo X-API-Key
	PIDList      string
	PIDs         []int

	// load shape
	Clients     int
	Messages    int
	Size        int
	Workers     int
	Publishers  int
	Rate        float64
	Group       string
	Broadcasts  int
	RoomSize    int
	Cross       bool
	Count       int
	Concurrency int

	// connections
	SrcList     string
	Srcs        []net.IP
	Procs       int
	DialConc    int
	ConnectRate float64

	// time bounds
	Duration time.Duration
	Drain    time.Duration
	Settle   time.Duration
	Timeout  time.Duration

	// output
	Progress time.Duration
	Quiet    bool
	Strict   bool

	sessionFlags // resume scenario and -ack

	set map[string]bool // flags given explicitly
}

var scenarios = []string{"idle", "fanout", "unicast", "connect-churn", "cluster", "resume"}

// Hard upper bounds: every run is bounded in size and time.
const (
	maxClients  = 1_000_000
	maxMessages = 100_000_000
	maxSize     = 512 << 10
	maxProcs    = 64
	maxTimeout  = 2 * time.Hour
)

func newFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.StringVar(&c.Scenario, "scenario", "", "the scenario, as an alternative to the positional argument")

	fs.StringVar(&c.Target, "target", "gows", "server `KIND`: gows (go-websocket) or centrifugo (v6, JSON protocol)")
	fs.StringVar(&c.URLList, "url", "http://127.0.0.1:7800", "server base `URL`(s), comma-separated (http://127.0.0.1:7800 or just 127.0.0.1:7800); loopback only")
	fs.StringVar(&c.System, "system", "bench", "gows systemId (registered at start; \"already registered\" is fine)")
	fs.StringVar(&c.Token, "token", "", "gows API token, sent as \"Authorization: Bearer <token>\"")
	fs.StringVar(&c.ConnectToken, "connect-token", "", "gows connect token (JWT), sent as ?token= on the WebSocket URL")
	fs.StringVar(&c.APIKey, "api-key", "", "centrifugo HTTP API key (X-API-Key), needed to publish")
	fs.StringVar(&c.PIDList, "pid", "", "server process `PID`(s), comma-separated: CPU and RSS are read from /proc and summed")

	fs.IntVar(&c.Clients, "clients", 0, "WebSocket connections (default: fanout 1000, unicast 2000, idle 1000, cluster 1000)")
	fs.IntVar(&c.Messages, "messages", 0, "fanout: messages published to the group (default 200); unicast, cluster: send_to_client calls (20000, 2000)")
	fs.IntVar(&c.Size, "size", 64, "payload `BYTES`: the JSON object in data, padded (at least ~42: run id, seq, timestamp)")
	fs.IntVar(&c.Workers, "workers", 16, "unicast/cluster: concurrent keep-alive HTTP workers")
	fs.IntVar(&c.Publishers, "publishers", 1, "fanout: `N` concurrent publishers, each on its own keep-alive HTTP connection, together sending -messages; order is checked per publisher")
	fs.Float64Var(&c.Rate, "rate", 0, "fixed publish `RATE` in requests/s over all workers or publishers (0: as fast as possible)")
	fs.StringVar(&c.Group, "group", "bench-g", "fanout: group name (gows) or channel (centrifugo)")
	fs.IntVar(&c.Broadcasts, "broadcasts", 1, "cluster: send_to_system messages before the unicast phase")
	fs.IntVar(&c.RoomSize, "room", 0, "cluster: rooms of this size after the unicast phase (etcd writes per bind, RPCs per send_to_group, list latency; 0: none)")
	fs.BoolVar(&c.Cross, "cross", false, "unicast with several -url: call the API on another node than the client's (cluster does this always)")
	fs.IntVar(&c.Count, "count", 0, "connect-churn: stop after this many connects (0: only -duration bounds it)")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "connect-churn: concurrent connect/disconnect loops (per process)")

	fs.StringVar(&c.SrcList, "src", "", "local source `ADDRS` to spread connections over, e.g. 127.0.0.2-127.0.0.9 or 127.0.0.2-9 (about 28k ports each)")
	fs.IntVar(&c.Procs, "procs", 1, "client processes (each holds clients/procs connections; about 19,000 fit in one)")
	fs.IntVar(&c.DialConc, "dial-concurrency", 64, "concurrent dials per process while connecting")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "connections opened per second over all processes (0: as fast as possible)")

	fs.DurationVar(&c.Duration, "duration", 0, "idle: hold time (default 10s); connect-churn: churn time (10s); fanout/unicast/cluster: limit on the publish phase (60s)")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "after the last publish, wait at most this long for outstanding deliveries")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "idle: wait after connecting before reading the server's RSS")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "hard limit on the whole run (at most 2h)")

	fs.DurationVar(&c.Progress, "progress", time.Second, "progress line interval on stderr (0: none)")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress line and no notes on stderr")
	fs.BoolVar(&c.Strict, "strict", false, "exit 3 if any message was lost, duplicated or out of order, or any connection or API call failed")
	c.sessionFlags.register(fs)
	return fs
}

const usageText = `wsbench: load generator for go-websocket (and Centrifugo, for comparison).

Usage:
  wsbench SCENARIO [flags]

Scenarios:
  fanout         -clients connections join one group; -messages send_to_group
                 calls are published one after another, or by -publishers
                 concurrent publishers (each message of one publisher must
                 arrive in order, those of different publishers may
                 interleave); every client must get every message. Reports
                 deliveries/s, server CPU-us per delivery, p50/p99 publish-
                 to-receive latency, lost/dup/out-of-order. Start the server
                 with membership events off for the bench system, or binding
                 N clients costs N^2/2 event frames:
                   GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=bench   (or
                   GOWS_WEBSOCKET_MEMBERSHIPEVENTS=false)
                 Event frames (code 1001/1002) are never counted as deliveries.
                 A burst of -messages must fit the server's per-client queue
                 (queueLength, 256 by default): use -rate for longer runs.
  unicast        -clients connections; -messages send_to_client calls from
                 -workers keep-alive HTTP workers (each client is served by one
                 worker, so its messages must arrive in order). Reports req/s,
                 CPU-us per message, p50/p99 publish-to-receive latency. Use
                 -rate for a fixed request rate (e.g. p99 at 50% of max rate).
                 With -ack every send asks for an acknowledgement and every
                 client answers it: the API call latency is the ack round trip.
  idle           -clients connections are opened and held for -duration.
                 Reports server RSS per connection ((RSS after - RSS before)/N,
                 read -settle after the last connect), CPU-us per connect,
                 server CPU while idle, connections dropped while held.
                 Use a freshly started server: a Go heap that grew in an
                 earlier run is reused and hides the cost of new connections.
  connect-churn  -concurrency loops connect, wait for the first frame, close;
                 for -duration or -count connects. Reports connects/s, connect
                 latency, errors, CPU-us per connect.
  cluster        several -url nodes: connections spread round-robin over them;
                 -broadcasts send_to_system calls on the first node must reach
                 every client; then -messages send_to_client calls, each made
                 on another node than the one holding the client (cross-node
                 latency p50/p99).
  resume         -clients connections with sessions (start the server with
                 GOWS_WEBSOCKET_SESSIONTTL=30s) receive send_to_system at
                 -rate for -duration while -cut-rate connections per second
                 are cut without a close frame and resumed with their last
                 seq. Reports lost/dup/out-of-order (must be 0/0/0), session
                 seq gaps, refused resumes and resume latency p50/p99 (from
                 the reconnect to the resumed welcome).

Every message carries a run id, a per-client sequence number and the send time
(unix ns) inside data, padded to -size bytes; receivers keep a latency histogram
and count lost, duplicated and out-of-order messages. Server CPU (utime+stime)
and RSS (VmRSS) come from /proc/PID of the -pid processes, summed; without -pid
those columns are left out. Only loopback targets are accepted (127.0.0.0/8,
::1). A progress line goes to stderr; the final table to stdout, followed by one
line "RESULT {json}".

Flags:
`

const usageExamples = `
Examples:
  # server for the benchmarks (events off for the bench system):
  GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=bench ./go-websocket -c conf.ini &

  wsbench fanout  -url 127.0.0.1:7800 -pid $(pgrep -n go-websocket) -clients 1000 -messages 200 -size 64
  wsbench fanout  -url 127.0.0.1:7800 -pid 1234 -clients 1000 -messages 200 -publishers 16  # concurrent
  wsbench unicast -url 127.0.0.1:7800 -pid 1234 -clients 2000 -messages 20000 -workers 16
  wsbench unicast -url 127.0.0.1:7800 -pid 1234 -rate 5000 -messages 50000    # fixed rate
  wsbench idle    -url 127.0.0.1:7800 -pid 1234 -clients 19000 -src 127.0.0.2-127.0.0.9 -duration 30s
  wsbench idle    -clients 19000 -procs 2 -src 127.0.0.2-127.0.0.9 -pid 1234   # 2 client processes
  wsbench connect-churn -url 127.0.0.1:7800 -pid 1234 -duration 10s -concurrency 32 -src 127.0.0.2-9
  wsbench cluster -url 127.0.0.1:7801,127.0.0.1:7802,127.0.0.1:7803 -pid 11,12,13 -clients 3000

  # the same fanout against Centrifugo v6 (anonymous connect + subscribe allowed):
  wsbench fanout -target centrifugo -url 127.0.0.1:8000 -api-key KEY -pid 999

Exit status: 0 done, 1 run failed, 2 bad usage, 3 -strict and something was lost or failed.
`

// flagGroups orders the flags in -help.
var flagGroups = []struct {
	title string
	names []string
}{
	{"Target", []string{"scenario", "target", "url", "system", "token", "connect-token", "api-key", "pid"}},
	{"Load", []string{"clients", "messages", "size", "workers", "publishers", "rate", "group", "broadcasts", "room", "cross", "count", "concurrency", "cut-rate", "ack", "ack-timeout"}},
	{"Connections", []string{"src", "procs", "dial-concurrency", "connect-rate"}},
	{"Time bounds", []string{"duration", "drain", "settle", "timeout"}},
	{"Output", []string{"progress", "quiet", "strict"}},
}

const (
	usageWidth  = 96
	usageIndent = 31
)

// wrapWords breaks s into lines of at most width characters (a longer word
// gets a line of its own).
func wrapWords(s string, width int) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		switch {
		case cur == "":
			cur = word
		case len(cur)+1+len(word) <= width:
			cur += " " + word
		default:
			lines = append(lines, cur)
			cur = word
		}
	}
	return append(lines, cur)
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageText)
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n  %s:\n", g.title)
		for _, name := range g.names {
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			arg, usage := flag.UnquoteUsage(f)
			left := "-" + f.Name
			if arg != "" {
				left += " " + arg
			}
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			lines := wrapWords(usage, usageWidth-usageIndent)
			fmt.Fprintf(w, "    %-*s %s\n", usageIndent-5, left, lines[0])
			for _, l := range lines[1:] {
				fmt.Fprintf(w, "%*s%s\n", usageIndent, "", l)
			}
		}
	}
	fmt.Fprint(w, usageExamples)
}

// errHelp is returned by parseArgs for -h/--help (the usage was printed).
var errHelp = flag.ErrHelp

// parseArgs parses the command line: "SCENARIO [flags]", "[flags] SCENARIO"
// or "-scenario NAME [flags]". Usage goes to w on -help or error.
func parseArgs(args []string, w io.Writer) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(c)
	fs.SetOutput(w)
	fs.Usage = func() { printUsage(w, fs) }
	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	if len(positional) > 1 {
		return nil, fmt.Errorf("one scenario at a time (got %s)", strings.Join(positional, ", "))
	}
	if len(positional) == 1 {
		if c.Scenario != "" && c.Scenario != positional[0] {
			return nil, fmt.Errorf("scenario given twice: %q and %q", c.Scenario, positional[0])
		}
		c.Scenario = positional[0]
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// finish applies scenario defaults and validates.
func (c *Config) finish() error {
	if c.Scenario == "" {
		return errors.New("no scenario: give one of " + strings.Join(scenarios, ", ") + " (see -help)")
	}
	if !slices.Contains(scenarios, c.Scenario) {
		return fmt.Errorf("unknown scenario %q: want one of %s", c.Scenario, strings.Join(scenarios, ", "))
	}
	switch c.Target {
	case "gows", "centrifugo":
	default:
		return fmt.Errorf("-target %q: want gows or centrifugo", c.Target)
	}
	if c.Target == "centrifugo" && c.Scenario == "cluster" {
		return errors.New("-target centrifugo supports fanout, unicast, idle and connect-churn (not cluster)")
	}
	if c.Target == "centrifugo" && (c.Scenario == "fanout" || c.Scenario == "unicast") && c.APIKey == "" {
		return errors.New("-target centrifugo needs -api-key (http_api.key in its config) to publish")
	}
	defaults := map[string]struct {
		clients, messages int
		duration          time.Duration
	}{
		"fanout":        {1000, 200, 60 * time.Second},
		"unicast":       {2000, 20000, 60 * time.Second},
		"idle":          {1000, 0, 10 * time.Second},
		"connect-churn": {0, 0, 10 * time.Second},
		"cluster":       {1000, 2000, 60 * time.Second},
		"resume":        {500, 0, 20 * time.Second},
	}[c.Scenario]
	if !c.set["clients"] {
		c.Clients = defaults.clients
	}
	if !c.set["messages"] {
		c.Messages = defaults.messages
	}
	if !c.set["duration"] {
		c.Duration = defaults.duration
	}
	var err error
	if c.PIDs, err = parsePIDs(c.PIDList); err != nil {
		return err
	}
	if c.Srcs, err = parseSrc(c.SrcList); err != nil {
		return err
	}
	switch {
	case c.Scenario != "connect-churn" && (c.Clients < 1 || c.Clients > maxClients):
		return fmt.Errorf("-clients %d: want 1..%d", c.Clients, maxClients)
	case (c.Scenario == "fanout" || c.Scenario == "unicast" || c.Scenario == "cluster") && (c.Messages < 1 || c.Messages > maxMessages):
		return fmt.Errorf("-messages %d: want 1..%d", c.Messages, maxMessages)
	case c.Size < 0 || c.Size > maxSize:
		return fmt.Errorf("-size %d: want 0..%d", c.Size, maxSize)
	case c.Workers < 1 || c.Workers > 1024:
		return fmt.Errorf("-workers %d: want 1..1024", c.Workers)
	case c.Publishers < 1 || c.Publishers > maxLanes:
		return fmt.Errorf("-publishers %d: want 1..%d", c.Publishers, maxLanes)
	case c.Publishers > 1 && c.Scenario != "fanout":
		return fmt.Errorf("-publishers applies to the fanout scenario only")
	case c.Rate < 0:
		return fmt.Errorf("-rate %g: must not be negative", c.Rate)
	case c.ConnectRate < 0:
		return fmt.Errorf("-connect-rate %g: must not be negative", c.ConnectRate)
	case c.Procs < 1 || c.Procs > maxProcs:
		return fmt.Errorf("-procs %d: want 1..%d", c.Procs, maxProcs)
	case c.DialConc < 1 || c.DialConc > 4096:
		return fmt.Errorf("-dial-concurrency %d: want 1..4096", c.DialConc)
	case c.Concurrency < 1 || c.Concurrency > 4096:
		return fmt.Errorf("-concurrency %d: want 1..4096", c.Concurrency)
	case c.Count < 0:
		return fmt.Errorf("-count %d: must not be negative", c.Count)
	case c.RoomSize < 0 || c.RoomSize > 100000:
		return fmt.Errorf("-room %d: want 0..100000", c.RoomSize)
	case c.Broadcasts < 1 || c.Broadcasts > 10000:
		return fmt.Errorf("-broadcasts %d: want 1..10000", c.Broadcasts)
	case c.Group == "" || len(c.Group) > 128:
		return fmt.Errorf("-group: want 1..128 characters")
	case c.System == "" || len(c.System) > 128:
		return fmt.Errorf("-system: want 1..128 characters")
	case c.Timeout <= 0 || c.Timeout > maxTimeout:
		return fmt.Errorf("-timeout %s: want >0 and at most %s", c.Timeout, maxTimeout)
	case c.Duration <= 0 || c.Duration > c.Timeout:
		return fmt.Errorf("-duration %s: want >0 and at most -timeout (%s)", c.Duration, c.Timeout)
	case c.Drain < 0 || c.Drain > c.Timeout:
		return fmt.Errorf("-drain %s: want 0..-timeout", c.Drain)
	case c.Settle < 0 || c.Settle > c.Timeout:
		return fmt.Errorf("-settle %s: want 0..-timeout", c.Settle)
	case c.Progress < 0:
		return fmt.Errorf("-progress %s: must not be negative", c.Progress)
	}
	if strings.TrimSpace(c.URLList) == "" {
		return errors.New("-url: no server given")
	}
	if c.Scenario == "cluster" && len(splitList(c.URLList)) < 2 {
		return errors.New("cluster needs at least two -url nodes (comma-separated)")
	}
	if err := c.sessionFlags.check(c); err != nil {
		return err
	}
	if c.Clients > 0 && c.Procs > c.Clients && c.Scenario != "connect-churn" {
		c.Procs = c.Clients
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
