package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds from 1 µs to 60 s. Request latency keeps
// 3 significant digits (~140 KiB a histogram), handshake time 2 (~20 KiB).
const (
	histMaxUS       = 60_000_000
	latencyDigits   = 3
	handshakeDigits = 2
)

// Run loads the targets of o and returns the report of the measured part of
// the run. It returns an error, and no report, only when the run cannot
// start: invalid options, an unreadable URLs file, a refused target, an
// unloadable client certificate. Cancelling ctx ends the run early; the
// partial report then has Interrupted set. Progress lines go to progress
// unless it is nil, o.Quiet is set or o.Progress is 0.
func Run(ctx context.Context, o Options, progress io.Writer) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	targets, err := loadTargets(ctx, &o)
	if err != nil {
		return nil, err
	}
	if err := configureTLS(&o, targets); err != nil {
		return nil, err
	}
	r := &runner{o: o, now: o.Now, targets: targets}
	return r.run(ctx, progress), nil
}

// configureTLS gives every target its client TLS configuration: no
// certificate verification (the fingerprint is pinned instead), TLS 1.2 or
// later, SNI unless the host is an IP literal, the shared session cache when
// resuming, and the client certificate if any.
func configureTLS(o *Options, targets []*target) error {
	base := &tls.Config{
		// Gemini servers are trusted on first use and this is a load tool:
		// certificates are not verified, but their fingerprint is pinned per
		// target for the run (KindCertChanged).
		InsecureSkipVerify: true, //nolint:gosec // see above
		MinVersion:         tls.VersionTLS12,
	}
	if o.KeyExchange == KEXX25519 {
		base.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	if o.Resume {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(max(64, 4*len(targets)))
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return fmt.Errorf("load client certificate: %w", err)
		}
		// Sent whatever CAs the server lists: Gemini client certificates
		// are self-signed.
		base.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
	}
	for _, t := range targets {
		t.tls = base.Clone()
		if !t.isIP {
			t.tls.ServerName = t.host
		}
	}
	return nil
}

// loadTargets reads the URLs file, parses every URL and applies the safety
// check.
func loadTargets(ctx context.Context, o *Options) ([]*target, error) {
	urls := append([]string(nil), o.URLs...)
	if o.URLsFile != "" {
		f, err := os.Open(o.URLsFile)
		if err != nil {
			return nil, fmt.Errorf("open URLs file: %w", err)
		}
		more, err := ParseURLList(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.URLsFile, err)
		}
		urls = append(urls, more...)
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: no target URL", ErrInvalidOptions)
	}
	targets := make([]*target, 0, len(urls))
	checked := make(map[string]bool)
	for _, u := range urls {
		t, err := parseTarget(u)
		if err != nil {
			return nil, err
		}
		if !o.AllowRemote && !checked[t.host] {
			if err := CheckLoopback(ctx, o.Resolver, t.host); err != nil {
				return nil, fmt.Errorf("%s: %w", u, err)
			}
			checked[t.host] = true
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// runner is one run.
type runner struct {
	o       Options
	now     func() time.Time
	targets []*target

	start       time.Time
	measureFrom time.Time // end of the warm-up
	end         time.Time // no request starts after it; zero in count mode
	tickets     atomic.Int64
	workers     []*worker
}

func (r *runner) run(ctx context.Context, progress io.Writer) *Report {
	// Workers (and their histograms) exist before the clock starts, so
	// allocating them does not show as latency.
	r.workers = make([]*worker, r.o.Concurrency)
	for i := range r.workers {
		r.workers[i] = newWorker(r, i)
	}
	r.start = r.now()
	r.measureFrom = r.start.Add(r.o.Warmup)
	if r.o.Requests == 0 {
		r.end = r.measureFrom.Add(r.o.Duration)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var slots chan slot
	schedDone := make(chan struct{})
	if r.o.closedLoop() {
		close(schedDone)
	} else {
		slots = make(chan slot, r.o.Concurrency)
		p := plan{start: r.start, rate: r.o.Rate, warmup: r.o.Warmup, duration: r.o.Duration, count: r.o.Requests}
		go func() {
			defer close(schedDone)
			tw := &timerWaiter{now: r.now}
			schedule(runCtx, p, tw, slots)
			tw.stop()
			close(slots)
		}()
	}

	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if slots == nil {
				w.closedLoop(runCtx)
			} else {
				w.openLoop(runCtx, slots)
			}
		}()
	}

	var pr *progressPrinter
	if progress != nil && !r.o.Quiet && r.o.Progress > 0 {
		pr = startProgress(r, progress)
	}
	wg.Wait()
	interrupted := ctx.Err() != nil
	finish := r.now()
	cancel()
	<-schedDone
	if pr != nil {
		pr.stop()
	}
	return r.report(finish, interrupted)
}

// worker runs requests one after another and owns its statistics, so
// workers never contend; the runner merges them when the run ends.
type worker struct {
	r    *runner
	c    *conn
	next int // index of the next target, round-robin

	lat, hs   *hdrhistogram.Histogram
	status    [70]int64 // by exact code; gateway.ParseResponseHeader returns 10..69
	errs      [numKinds]int64
	responses int64
	bytes     int64
	resumed   int64
	unsent    int64

	live liveCounters
}

// liveCounters are read by the progress printer while the worker writes.
type liveCounters struct {
	done  atomic.Int64 // requests finished, warm-up included
	errs  atomic.Int64
	bytes atomic.Int64
	_     [40]byte // keep workers' counters off each other's cache lines
}

func newWorker(r *runner, id int) *worker {
	return &worker{
		r:    r,
		c:    newConn(r.now, r.o.AllowRemote),
		next: id % len(r.targets),
		lat:  hdrhistogram.New(1, histMaxUS, latencyDigits),
		hs:   hdrhistogram.New(1, histMaxUS, handshakeDigits),
	}
}

// pick returns the next target of this worker.
func (w *worker) pick() *target {
	t := w.r.targets[w.next]
	w.next++
	if w.next == len(w.r.targets) {
		w.next = 0
	}
	return t
}

// closedLoop starts a request as soon as the previous one ends.
func (w *worker) closedLoop(ctx context.Context) {
	r := w.r
	for ctx.Err() == nil {
		start := r.now()
		measured := !start.Before(r.measureFrom)
		if r.end.IsZero() {
			if measured && r.tickets.Add(1) > r.o.Requests {
				return
			}
		} else if !start.Before(r.end) {
			return
		}
		o := w.c.do(ctx, w.pick(), start, r.o.Timeout)
		w.record(o, start, measured)
	}
}

// openLoop runs the slots the scheduler sends, measuring latency from each
// slot's due time. Slots picked up after the end of the run are counted as
// unsent.
func (w *worker) openLoop(ctx context.Context, slots <-chan slot) {
	r := w.r
	for s := range slots {
		if ctx.Err() != nil {
			return
		}
		start := r.now()
		if !r.end.IsZero() && !start.Before(r.end) {
			if s.measured {
				w.unsent++
			}
			continue
		}
		o := w.c.do(ctx, w.pick(), start, r.o.Timeout)
		w.record(o, s.due, s.measured)
	}
}

// record adds an outcome to the worker's statistics; from is where its
// latency starts (the actual start in the closed loop, the scheduled one in
// the open loop).
func (w *worker) record(o outcome, from time.Time, measured bool) {
	if o.aborted {
		return
	}
	w.live.done.Add(1)
	w.live.bytes.Add(o.bytes)
	if !o.ok {
		w.live.errs.Add(1)
	}
	if !measured {
		return
	}
	w.bytes += o.bytes
	if o.hsDone {
		_ = w.hs.RecordValue(clampUS(o.handshake))
		if o.resumed {
			w.resumed++
		}
	}
	if !o.ok {
		w.errs[o.kind]++
		return
	}
	w.responses++
	w.status[o.status]++
	_ = w.lat.RecordValue(clampUS(o.end.Sub(from)))
}

// clampUS converts d to whole microseconds within the histogram's range.
func clampUS(d time.Duration) int64 {
	us := d.Microseconds()
	switch {
	case us < 1:
		return 1
	case us > histMaxUS:
		return histMaxUS
	}
	return us
}
