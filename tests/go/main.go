// Pushes with client_golang's push package, as tests/clients.rs drives it.
//
//	pushclient SCENARIO URL...   push (or delete) the scenario's metrics to
//	                             every gateway URL, in order, with one
//	                             registry, so every gateway gets the same
//	                             values (exemplar timestamps included)
//	pushclient scrape URL        GET URL/metrics as delimited protobuf,
//	                             decode it with expfmt and print each pushed
//	                             family in a canonical text form (exemplars,
//	                             native histogram fields), push times masked
//
// Built offline against Debian's golang-github-prometheus-client-golang-dev
// (GOPATH mode, GOPATH=/usr/share/gocode); see tests/clients.rs.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: pushclient SCENARIO URL... | pushclient scrape URL")
	}
	scenario, urls := os.Args[1], os.Args[2:]
	if scenario == "scrape" {
		for _, u := range urls {
			if err := scrape(u); err != nil {
				fail("scrape %s: %v", u, err)
			}
		}
		return
	}
	run, ok := scenarios[scenario]
	if !ok {
		fail("unknown scenario %q", scenario)
	}
	for _, u := range run() {
		for _, url := range urls {
			if err := u(url); err != nil {
				fail("%s against %s: %v", scenario, url, err)
			}
		}
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// Every request is bounded: a gateway that never answers fails the test.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// pusher is push.New with the bounded client.
func pusher(url, job string) *push.Pusher {
	return push.New(url, job).Client(httpClient)
}

// headerDoer adds one header to every request of the bounded client.
type headerDoer struct{ name, value string }

func (d headerDoer) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set(d.name, d.value)
	return httpClient.Do(r)
}

// An action against one gateway URL: one Push, Add or Delete.
type action func(url string) error

// scoped pushes to job inside, which must work, and to job outside, which
// must get 403 (write scopes, --web.access-file); client is how it asks.
func scoped(client push.HTTPDoer, inside, outside string) []action {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cg_scoped", Help: "Pushed within a scope."})
	g.Set(3)
	reg.MustRegister(g)
	return []action{func(url string) error {
		p := func(job string) *push.Pusher { return push.New(url, job).Client(client).Gatherer(reg) }
		if user := os.Getenv("GO_PUSH_USER"); user != "" {
			p = func(job string) *push.Pusher {
				return push.New(url, job).Client(client).Gatherer(reg).BasicAuth(user, os.Getenv("GO_PUSH_PASS"))
			}
		}
		if err := p(inside).Push(); err != nil {
			return fmt.Errorf("inside the scope: %v", err)
		}
		err := p(outside).Push()
		if err == nil || !strings.Contains(err.Error(), "403") {
			return fmt.Errorf("outside the scope: want a 403, got %v", err)
		}
		return nil
	}}
}

// tlsClient presents GO_CLIENT_CERT/GO_CLIENT_KEY and trusts GO_CA.
func tlsClient() push.HTTPDoer {
	cert, err := tls.LoadX509KeyPair(os.Getenv("GO_CLIENT_CERT"), os.Getenv("GO_CLIENT_KEY"))
	if err != nil {
		fail("client certificate: %v", err)
	}
	ca, err := os.ReadFile(os.Getenv("GO_CA"))
	if err != nil {
		fail("CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}},
	}
}

// Each scenario builds its registries once and returns its actions, which
// main runs against every URL.
var scenarios = map[string]func() []action{
	// Basic auth (GO_PUSH_USER, GO_PUSH_PASS) under write scopes: job
	// ci-go is the user's, backup is not.
	"scoped-basic": func() []action { return scoped(httpClient, "ci-go", "backup") },
	// A client certificate under write scopes: job certified is its SAN's.
	"scoped-cert": func() []action { return scoped(tlsClient(), "certified", "other") },
	// A push that sets its group's TTL with the Pushgateway-Group-TTL
	// header. client_golang 1.15+ has Pusher.Header for this; Debian's
	// 1.14 takes the header through its HTTPDoer, which works everywhere.
	"ttl": func() []action {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cg_ttl_probe", Help: "Expires soon."})
		g.Set(1)
		reg.MustRegister(g)
		return []action{func(url string) error {
			doer := headerDoer{name: "Pushgateway-Group-TTL", value: "500ms"}
			return push.New(url, "go_ttl").Client(doer).Gatherer(reg).Push()
		}}
	},
	// Push (PUT) a gauge, a counter vector, a classic histogram and a
	// summary to job go_batch, instance x.
	"push": func() []action {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cg_job_last_success_unixtime", Help: "Last time the batch job succeeded."})
		g.Set(1234567890.5)
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cg_records_processed_total", Help: "Records processed."}, []string{"kind"})
		c.WithLabelValues("a").Add(3)
		c.WithLabelValues("b").Add(1.5)
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cg_duration_seconds", Help: "Duration.", Buckets: []float64{0.1, 1}})
		h.Observe(0.5)
		h.Observe(2)
		s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "cg_size_bytes", Help: "Size.", Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01}})
		s.Observe(42)
		s.Observe(7)
		reg.MustRegister(g, c, h, s)
		return []action{func(url string) error {
			return pusher(url, "go_batch").Grouping("instance", "x").Gatherer(reg).Push()
		}}
	},
	// Add (POST) replaces only the pushed family of the same group; a
	// second job gets a Push of its own.
	"add": func() []action {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cg_job_last_success_unixtime", Help: "Last time the batch job succeeded."})
		g.Set(1234567999)
		reg.MustRegister(g)
		other := prometheus.NewRegistry()
		o := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cg_other", Help: "Other job."})
		o.Set(7)
		other.MustRegister(o)
		return []action{
			func(url string) error {
				return pusher(url, "go_batch").Grouping("instance", "x").Gatherer(reg).Add()
			},
			func(url string) error {
				return pusher(url, "go_other").Gatherer(other).Push()
			},
		}
	},
	// A job name and a grouping value containing '/': client_golang
	// encodes them as job@base64/... and path@base64/...; an empty value
	// as empty@base64/=; other values with url.QueryEscape, so a space
	// goes as '+', which the gateway keeps as '+' (path, not query).
	"slash": func() []action {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cg_slashed", Help: "Pushed under slashed grouping values."})
		g.Set(11)
		reg.MustRegister(g)
		return []action{func(url string) error {
			return pusher(url, "go/slashed/job").Grouping("path", "/var/tmp").Grouping("empty", "").Grouping("note", "a b?c&d=é").Gatherer(reg).Push()
		}}
	},
	// The text format instead of delimited protobuf.
	"text": func() []action {
		reg := prometheus.NewRegistry()
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cg_text_total", Help: "Pushed as text, with \\ and\nnewline."}, []string{"v"})
		c.WithLabelValues("quote\" backslash\\ newline\n").Add(5)
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cg_text_seconds", Help: "A histogram as text.", Buckets: []float64{0.25, 2.5}})
		h.Observe(1)
		reg.MustRegister(c, h)
		return []action{func(url string) error {
			return pusher(url, "go_text").Grouping("instance", "t").Format(expfmt.FmtText).Gatherer(reg).Push()
		}}
	},
	// Delete (DELETE) of exactly one group.
	"delete": func() []action {
		return []action{func(url string) error {
			return pusher(url, "go_other").Delete()
		}}
	},
	// Exemplars on a counter and on classic histogram buckets (one of
	// them +Inf, which client_golang then adds explicitly).
	"exemplars": func() []action {
		reg := prometheus.NewRegistry()
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cg_exemplar_requests_total", Help: "Counter with an exemplar."})
		c.(prometheus.ExemplarAdder).AddWithExemplar(3, prometheus.Labels{"trace_id": "abc123"})
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cg_exemplar_latency_seconds", Help: "Histogram with exemplars.", Buckets: []float64{0.1, 1}})
		h.(prometheus.ExemplarObserver).ObserveWithExemplar(0.05, prometheus.Labels{"trace_id": "def456"})
		h.(prometheus.ExemplarObserver).ObserveWithExemplar(5, prometheus.Labels{"trace_id": "ghi789", "span": "s1"})
		h.Observe(0.5)
		reg.MustRegister(c, h)
		return []action{func(url string) error {
			return pusher(url, "go_exemplars").Gatherer(reg).Push()
		}}
	},
	// Native histograms: one sparse only, one with classic buckets too,
	// with observations below zero, in the zero bucket and above.
	"native": func() []action {
		reg := prometheus.NewRegistry()
		n := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cg_native_seconds", Help: "Native only.", NativeHistogramBucketFactor: 1.1})
		both := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cg_native_both_seconds", Help: "Native and classic.", Buckets: []float64{0.5, 5}, NativeHistogramBucketFactor: 2, NativeHistogramZeroThreshold: 0.001})
		for _, v := range []float64{-3, -0.5, 0, 0.0001, 0.2, 0.21, 1, 1.5, 7, 100, 1e6} {
			n.Observe(v)
			both.Observe(v)
		}
		reg.MustRegister(n, both)
		return []action{func(url string) error {
			return pusher(url, "go_native").Grouping("instance", "n").Gatherer(reg).Push()
		}}
	},
}

// scrape prints the gateway's pushed families as client_golang's expfmt
// decodes them from a delimited protobuf scrape.
func scrape(url string) error {
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", string(expfmt.FmtProtoDelim))
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format != expfmt.FmtProtoDelim {
		return fmt.Errorf("answered %q (Content-Type %q), not delimited protobuf", format, resp.Header.Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(resp.Body, format)
	var families []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		name := mf.GetName()
		// The servers' own families differ between implementations.
		if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "pushgateway_") {
			families = append(families, mf)
		}
	}
	sort.Slice(families, func(i, j int) bool { return families[i].GetName() < families[j].GetName() })
	for _, mf := range families {
		printFamily(mf)
	}
	return nil
}

func printFamily(mf *dto.MetricFamily) {
	name := mf.GetName()
	pushTime := name == "push_time_seconds" || name == "push_failure_time_seconds"
	fmt.Printf("family %s type=%s help=%q\n", name, mf.GetType(), mf.GetHelp())
	lines := make([]string, 0, len(mf.GetMetric()))
	for _, m := range mf.GetMetric() {
		var b strings.Builder
		fmt.Fprintf(&b, "  metric %s", labels(m.GetLabel()))
		if m.TimestampMs != nil {
			fmt.Fprintf(&b, " timestamp_ms=%d", m.GetTimestampMs())
		}
		if m.Gauge != nil {
			v := m.GetGauge().GetValue()
			if pushTime {
				fmt.Fprintf(&b, " gauge=%s", zeroOrNonzero(v))
			} else {
				fmt.Fprintf(&b, " gauge=%s", num(v))
			}
		}
		if m.Counter != nil {
			fmt.Fprintf(&b, " counter=%s", num(m.GetCounter().GetValue()))
			if e := m.GetCounter().GetExemplar(); e != nil {
				fmt.Fprintf(&b, "\n    exemplar %s", exemplar(e))
			}
		}
		if m.Untyped != nil {
			fmt.Fprintf(&b, " untyped=%s", num(m.GetUntyped().GetValue()))
		}
		if s := m.GetSummary(); s != nil {
			fmt.Fprintf(&b, " summary count=%d sum=%s", s.GetSampleCount(), num(s.GetSampleSum()))
			for _, q := range s.GetQuantile() {
				fmt.Fprintf(&b, "\n    quantile %s=%s", num(q.GetQuantile()), num(q.GetValue()))
			}
		}
		if h := m.GetHistogram(); h != nil {
			histogram(&b, h)
		}
		lines = append(lines, b.String())
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
}

func histogram(b *strings.Builder, h *dto.Histogram) {
	fmt.Fprintf(b, " histogram count=%d sum=%s", h.GetSampleCount(), num(h.GetSampleSum()))
	if h.SampleCountFloat != nil {
		fmt.Fprintf(b, " count_float=%s", num(h.GetSampleCountFloat()))
	}
	for _, bk := range h.GetBucket() {
		fmt.Fprintf(b, "\n    bucket le=%s cumulative=%d", num(bk.GetUpperBound()), bk.GetCumulativeCount())
		if bk.CumulativeCountFloat != nil {
			fmt.Fprintf(b, " cumulative_float=%s", num(bk.GetCumulativeCountFloat()))
		}
		if e := bk.GetExemplar(); e != nil {
			fmt.Fprintf(b, "\n      exemplar %s", exemplar(e))
		}
	}
	if h.Schema != nil || h.ZeroThreshold != nil || h.ZeroCount != nil || h.ZeroCountFloat != nil ||
		len(h.GetPositiveSpan()) > 0 || len(h.GetNegativeSpan()) > 0 {
		fmt.Fprintf(b, "\n    native schema=%d zero_threshold=%s zero_count=%d", h.GetSchema(), num(h.GetZeroThreshold()), h.GetZeroCount())
		if h.ZeroCountFloat != nil {
			fmt.Fprintf(b, " zero_count_float=%s", num(h.GetZeroCountFloat()))
		}
		fmt.Fprintf(b, "\n    negative spans=%s deltas=%v counts=%v", spans(h.GetNegativeSpan()), h.GetNegativeDelta(), h.GetNegativeCount())
		fmt.Fprintf(b, "\n    positive spans=%s deltas=%v counts=%v", spans(h.GetPositiveSpan()), h.GetPositiveDelta(), h.GetPositiveCount())
	}
}

func spans(ss []*dto.BucketSpan) string {
	parts := make([]string, 0, len(ss))
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%d:%d", s.GetOffset(), s.GetLength()))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func exemplar(e *dto.Exemplar) string {
	ts := "none"
	if t := e.GetTimestamp(); t != nil {
		ts = fmt.Sprintf("%d.%09d", t.GetSeconds(), t.GetNanos())
	}
	return fmt.Sprintf("%s value=%s timestamp=%s", labels(e.GetLabel()), num(e.GetValue()), ts)
}

func labels(ls []*dto.LabelPair) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return fmt.Sprintf("%g", v)
}

func zeroOrNonzero(v float64) string {
	if v == 0 {
		return "0"
	}
	return "nonzero"
}
