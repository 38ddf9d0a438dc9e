package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"time"
)

// report is the final table (stdout) and the RESULT JSON line.
type report struct {
	title string
	rows  [][2]string
	kv    map[string]any
	notes []string
}

func newReport(title string) *report {
	return &report{title: title, kv: map[string]any{}}
}

// row adds a table row.
func (r *report) row(label, format string, args ...any) {
	r.rows = append(r.rows, [2]string{label, fmt.Sprintf(format, args...)})
}

// set adds a JSON field (floats are rounded to 3 decimals).
func (r *report) set(key string, v any) {
	if f, ok := v.(float64); ok {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			v = nil
		} else {
			v = math.Round(f*1000) / 1000
		}
	}
	r.kv[key] = v
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s ==\n", r.title)
	width := 0
	for _, row := range r.rows {
		width = max(width, len(row[0]))
	}
	for _, row := range r.rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, row[0], row[1])
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(r.notes) > 0 {
		r.kv["notes"] = r.notes
	}
	b, err := json.Marshal(r.kv)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	fmt.Fprintf(w, "RESULT %s\n", b)
}

// latency rows and fields for a histogram of nanoseconds, under prefix.
func (r *report) latency(label, prefix string, h HistData) {
	if h.N == 0 {
		r.row(label, "no samples")
		return
	}
	r.row(label, "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%d)",
		fmtDur(h.QuantileDur(.5)), fmtDur(h.QuantileDur(.9)), fmtDur(h.QuantileDur(.99)),
		fmtDur(h.QuantileDur(.999)), fmtDur(time.Duration(h.Max)), fmtDur(time.Duration(h.Mean())), h.N)
	us := func(v uint64) float64 { return float64(v) / 1e3 }
	r.set(prefix+"_p50_us", us(h.Quantile(.5)))
	r.set(prefix+"_p90_us", us(h.Quantile(.9)))
	r.set(prefix+"_p99_us", us(h.Quantile(.99)))
	r.set(prefix+"_p999_us", us(h.Quantile(.999)))
	r.set(prefix+"_max_us", us(h.Max))
	r.set(prefix+"_mean_us", h.Mean()/1e3)
}

// errors adds an error tally (sorted by count) as rows and a JSON map.
func (r *report) errors(label, key string, m map[string]int64) {
	var total int64
	for _, v := range m {
		total += v
	}
	r.set(key, total)
	if total == 0 {
		r.row(label, "0")
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	r.row(label, "%d", total)
	for i, k := range keys {
		if i == 5 {
			r.row("", "... %d more kinds", len(keys)-5)
			break
		}
		r.row("", "%6d x %s", m[k], k)
	}
	r.set(key+"_by_kind", m)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fus", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func fmtBytes(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, b/(1<<10))
	default:
		return fmt.Sprintf("%s%.0f B", neg, b)
	}
}

// perSec divides safely.
func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// progressLine keeps one live status line on stderr: rewritten in place with
// \r on a terminal, one plain line per interval otherwise.
type progressLine struct {
	w     io.Writer
	tty   bool
	every time.Duration

	mu     sync.Mutex
	status func() string
	start  time.Time
	dirty  bool
	quit   chan struct{}
	done   chan struct{}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgressLine(w io.Writer, tty bool, every time.Duration) *progressLine {
	p := &progressLine{w: w, tty: tty, every: every, start: time.Now(),
		quit: make(chan struct{}), done: make(chan struct{})}
	if every <= 0 {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

// phase switches the status function (nil: nothing printed).
func (p *progressLine) phase(f func() string) {
	p.mu.Lock()
	p.status = f
	p.mu.Unlock()
}

func (p *progressLine) loop() {
	defer close(p.done)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.mu.Lock()
			f := p.status
			p.mu.Unlock()
			if f == nil {
				continue
			}
			line := fmt.Sprintf("[%6.1fs] %s", time.Since(p.start).Seconds(), f())
			p.mu.Lock()
			if p.tty {
				fmt.Fprintf(p.w, "\r%s\x1b[K", line)
				p.dirty = true
			} else {
				fmt.Fprintln(p.w, line)
			}
			p.mu.Unlock()
		case <-p.quit:
			return
		}
	}
}

// printf writes a note on its own line without garbling the live line.
func (p *progressLine) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.dirty = false
	}
	fmt.Fprintf(p.w, format, args...)
}

func (p *progressLine) stop() {
	if p.every > 0 {
		select {
		case <-p.quit:
		default:
			close(p.quit)
		}
	}
	<-p.done
	p.mu.Lock()
	if p.dirty {
		fmt.Fprintln(p.w)
		p.dirty = false
	}
	p.mu.Unlock()
}
