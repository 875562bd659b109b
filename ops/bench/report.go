package bench

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// SchemaVersion identifies the JSON layout of Report. It changes only when
// a field is renamed, removed or changes meaning; adding a field keeps it.
const SchemaVersion = "chimalli.bench/v1"

// Report is the result of a run. Only the measured part counts: warm-up
// requests, and requests aborted by cancellation, are left out.
//
// WriteJSON writes it as one JSON object with these fields (schema
// "chimalli.bench/v1"; times in microseconds unless the name says
// otherwise):
//
//	schema               string   "chimalli.bench/v1"
//	targets              array of {"url": string, "server_cert": "sha256:<hex>" or ""}:
//	                     the fingerprint of the first certificate each target presented
//	mode                 "closed" or "open"
//	concurrency          int      workers (maximum requests in flight)
//	target_rate          number   requests/s of the open loop; 0 in the closed loop
//	resume               bool     TLS session resumption was on
//	key_exchange         string   "default" or "x25519" (Options.KeyExchange)
//	client_cert          bool     a client certificate was offered
//	started              string   RFC 3339 time the run (warm-up included) started
//	warmup_seconds       number   warm-up length, excluded from everything below
//	duration_seconds     number   measured time, from the end of the warm-up to the last request's end
//	interrupted          bool     the run was cancelled before its end
//	requests             int      measured requests that finished: responses + errors
//	responses            int      requests that got a well-formed header (any status)
//	errors               int      requests that failed (see errors_by_kind)
//	unsent               int      open loop: slots due before the end that no worker could start in time
//	bytes                int      bytes received (header + body), errors included
//	requests_per_second  number   requests / duration_seconds
//	bytes_per_second     number   bytes / duration_seconds
//	resumed              int      handshakes that resumed a TLS session
//	status               object   responses by exact status code: {"20": n, "51": n}; codes seen only
//	status_class         object   responses by class: {"2x": n, "5x": n}; classes seen only
//	errors_by_kind       object   every kind, zeros included: dial, tls, write, read_header,
//	                              bad_header, timeout, read_body, cert_changed
//	latency              summary  responses only, from the (scheduled, in the open loop) start to the end of the body
//	handshake            summary  completed TLS handshakes, errors after the handshake included
//
// A summary is {"count", "mean_us", "min_us", "p50_us", "p90_us", "p99_us",
// "p99_9_us", "max_us"}, all zero when count is 0. Latency keeps 3
// significant digits, handshake time 2.
type Report struct {
	Schema            string           `json:"schema"`
	Targets           []TargetReport   `json:"targets"`
	Mode              string           `json:"mode"`
	Concurrency       int              `json:"concurrency"`
	TargetRate        float64          `json:"target_rate"`
	Resume            bool             `json:"resume"`
	KeyExchange       string           `json:"key_exchange"`
	ClientCert        bool             `json:"client_cert"`
	Started           time.Time        `json:"started"`
	WarmupSeconds     float64          `json:"warmup_seconds"`
	DurationSeconds   float64          `json:"duration_seconds"`
	Interrupted       bool             `json:"interrupted"`
	Requests          int64            `json:"requests"`
	Responses         int64            `json:"responses"`
	Errors            int64            `json:"errors"`
	Unsent            int64            `json:"unsent"`
	Bytes             int64            `json:"bytes"`
	RequestsPerSecond float64          `json:"requests_per_second"`
	BytesPerSecond    float64          `json:"bytes_per_second"`
	Resumed           int64            `json:"resumed"`
	Status            map[string]int64 `json:"status"`
	StatusClass       map[string]int64 `json:"status_class"`
	ErrorsByKind      map[string]int64 `json:"errors_by_kind"`
	Latency           Summary          `json:"latency"`
	Handshake         Summary          `json:"handshake"`
}

// TargetReport describes one target URL of a run.
type TargetReport struct {
	URL string `json:"url"`
	// ServerCert is "sha256:<hex>" of the first certificate the target
	// presented, or "" if no handshake completed.
	ServerCert string `json:"server_cert"`
}

// Summary condenses a histogram of durations, in microseconds.
type Summary struct {
	Count  int64   `json:"count"`
	MeanUS float64 `json:"mean_us"`
	MinUS  int64   `json:"min_us"`
	P50US  int64   `json:"p50_us"`
	P90US  int64   `json:"p90_us"`
	P99US  int64   `json:"p99_us"`
	P999US int64   `json:"p99_9_us"`
	MaxUS  int64   `json:"max_us"`
}

// summarize reads a Summary from h.
func summarize(h *hdrhistogram.Histogram) Summary {
	n := h.TotalCount()
	if n == 0 {
		return Summary{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return Summary{
		Count:  n,
		MeanUS: h.Mean(),
		MinUS:  h.Min(),
		P50US:  q[50],
		P90US:  q[90],
		P99US:  q[99],
		P999US: q[99.9],
		MaxUS:  h.Max(),
	}
}

// report merges the workers' statistics.
func (r *runner) report(finish time.Time, interrupted bool) *Report {
	o := &r.o
	rep := &Report{
		Schema:        SchemaVersion,
		Mode:          "closed",
		Concurrency:   o.Concurrency,
		TargetRate:    o.Rate,
		Resume:        o.Resume,
		KeyExchange:   cmp.Or(o.KeyExchange, KEXDefault),
		ClientCert:    o.CertFile != "",
		Started:       r.start.UTC().Round(0),
		WarmupSeconds: o.Warmup.Seconds(),
		Interrupted:   interrupted,
		Status:        map[string]int64{},
		StatusClass:   map[string]int64{},
		ErrorsByKind:  map[string]int64{},
	}
	if !o.closedLoop() {
		rep.Mode = "open"
	}
	for _, t := range r.targets {
		tr := TargetReport{URL: t.url}
		if fp := t.fp.Load(); fp != nil {
			tr.ServerCert = "sha256:" + hex.EncodeToString(fp[:])
		}
		rep.Targets = append(rep.Targets, tr)
	}
	if d := finish.Sub(r.measureFrom); d > 0 {
		rep.DurationSeconds = d.Seconds()
	}
	lat := hdrhistogram.New(1, histMaxUS, latencyDigits)
	hs := hdrhistogram.New(1, histMaxUS, handshakeDigits)
	var status [70]int64
	var errs [numKinds]int64
	for _, w := range r.workers {
		lat.Merge(w.lat)
		hs.Merge(w.hs)
		for i, n := range w.status {
			status[i] += n
		}
		for i, n := range w.errs {
			errs[i] += n
		}
		rep.Responses += w.responses
		rep.Bytes += w.bytes
		rep.Resumed += w.resumed
		rep.Unsent += w.unsent
	}
	for code, n := range status {
		if n > 0 {
			rep.Status[strconv.Itoa(code)] = n
			rep.StatusClass[strconv.Itoa(code/10)+"x"] += n
		}
	}
	for k, n := range errs {
		rep.ErrorsByKind[ErrorKind(k).String()] = n
		rep.Errors += n
	}
	rep.Requests = rep.Responses + rep.Errors
	if rep.DurationSeconds > 0 {
		rep.RequestsPerSecond = float64(rep.Requests) / rep.DurationSeconds
		rep.BytesPerSecond = float64(rep.Bytes) / rep.DurationSeconds
	}
	rep.Latency = summarize(lat)
	rep.Handshake = summarize(hs)
	return rep
}

// WriteJSON writes r as indented JSON (see Report for the schema).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteText writes r as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	for _, t := range r.Targets {
		cert := t.ServerCert
		if cert == "" {
			cert = "(no handshake)"
		}
		p("target\t%s\t%s\n", t.URL, cert)
	}
	mode := "closed loop (as fast as possible)"
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %g req/s", r.TargetRate)
	}
	resume := "off"
	if r.Resume {
		resume = "on"
	}
	p("mode\t%s, %d connections, resumption %s, key exchange %s\n", mode, r.Concurrency, resume, r.KeyExchange)
	dur := fmt.Sprintf("%.2fs", r.DurationSeconds)
	if r.WarmupSeconds > 0 {
		dur += fmt.Sprintf(" (after %.2fs warm-up)", r.WarmupSeconds)
	}
	if r.Interrupted {
		dur += " (interrupted)"
	}
	p("duration\t%s\n", dur)
	p("requests\t%d (%.1f req/s): %d responses, %d errors\n", r.Requests, r.RequestsPerSecond, r.Responses, r.Errors)
	if r.Unsent > 0 {
		p("unsent\t%d scheduled requests could not start before the end\n", r.Unsent)
	}
	p("received\t%s (%s/s)\n", formatBytes(float64(r.Bytes)), formatBytes(r.BytesPerSecond))
	p("resumed\t%d handshakes\n", r.Resumed)
	p("\n")
	p("\tcount\tmean\tmin\tp50\tp90\tp99\tp99.9\tmax\n")
	for _, row := range []struct {
		name string
		s    Summary
	}{{"latency", r.Latency}, {"handshake", r.Handshake}} {
		s := row.s
		p("%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.name, s.Count,
			formatUS(s.MeanUS), formatUS(float64(s.MinUS)), formatUS(float64(s.P50US)), formatUS(float64(s.P90US)),
			formatUS(float64(s.P99US)), formatUS(float64(s.P999US)), formatUS(float64(s.MaxUS)))
	}
	p("\n")
	p("status\t%s\n", formatCounts(r.Status))
	p("class\t%s\n", formatCounts(r.StatusClass))
	p("errors\t%s\n", formatCounts(nonZero(r.ErrorsByKind)))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// formatCounts renders a count map sorted by key as "k=n k=n", or "none".
func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// nonZero returns the entries of m with a count.
func nonZero(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, n := range m {
		if n != 0 {
			out[k] = n
		}
	}
	return out
}

// formatUS renders microseconds with a unit people read easily.
func formatUS(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}

// formatBytes renders a byte count with a binary unit.
func formatBytes(n float64) string {
	const unit = 1024
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= unit && i < len(units)-1 {
		n /= unit
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
