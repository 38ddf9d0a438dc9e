package wstest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a node's /metrics.
type Metrics struct {
	Text     string                       // the body as served
	Families map[string]*dto.MetricFamily // parsed (the Prometheus text format)
}

// Scrape GETs url (a node's /metrics) with hc and parses the answer; an
// answer other than 200 or not in the Prometheus text format is an error.
func Scrape(hc *http.Client, url string) (*Metrics, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("GET %s: not the Prometheus text format: %w", url, err)
	}
	return &Metrics{Text: string(b), Families: fams}, nil
}

// MustScrape is Scrape that fails t on error.
func MustScrape(t testing.TB, hc *http.Client, url string) *Metrics {
	t.Helper()
	m, err := Scrape(hc, url)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Value sums the series of name whose labels include every name/value pair
// of labels (a counter's or gauge's value, a histogram's or summary's sample
// count); 0 when there is none.
func (m *Metrics) Value(name string, labels ...string) float64 {
	f := m.Families[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, s := range f.Metric {
		if !HasLabels(s, labels...) {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Untyped != nil:
			sum += s.Untyped.GetValue()
		case s.Histogram != nil:
			sum += float64(s.Histogram.GetSampleCount())
		case s.Summary != nil:
			sum += float64(s.Summary.GetSampleCount())
		}
	}
	return sum
}

// Labels turns a label map into the name/value pairs of Value (sorted).
func Labels(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, 2*len(m))
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}

// HasLabels reports whether s carries every name/value pair of labels.
func HasLabels(s *dto.Metric, labels ...string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range s.Label {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Goroutines reads go_goroutines from url (a node's /metrics) over a
// connection of its own that is closed right after, so that the reading
// does not depend on which keep-alive connections happen to be open; -1
// when the sample is absent.
func Goroutines(t testing.TB, url string) int {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	m := MustScrape(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, url)
	if m.Families["go_goroutines"] == nil {
		return -1
	}
	return int(m.Value("go_goroutines"))
}
