package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of an AuditPublisher.
const (
	// DefaultAuditSpoolBytes bounds the spool when no bound is given.
	DefaultAuditSpoolBytes = 256 << 20
	// DefaultAuditWindow is how many records may await their
	// acknowledgement at once.
	DefaultAuditWindow = 1024
	// DefaultAuditAckTimeout is how long a record waits for its
	// acknowledgement before JetStream counts as unable to take records.
	DefaultAuditAckTimeout = 5 * time.Second

	defaultSpoolSegment  = 8 << 20
	defaultRetryInterval = 250 * time.Millisecond
	maxRetryInterval     = 5 * time.Second
	defaultLogEvery      = 10 * time.Second
	auditTick            = 100 * time.Millisecond
	auditBatch           = 256 // records taken from the buffer per wake-up
)

// AuditPublisherConfig configures an AuditPublisher.
type AuditPublisherConfig struct {
	// Conn is the NATS connection to publish on. Required.
	Conn *nats.Conn
	// Subject is where the records go: chimalli.<cluster>.audit.<node>, a
	// subject of the CHIMALLI_AUDIT stream. Required.
	Subject string
	// Node names the node in record IDs and empty Node fields; the host
	// name when "".
	Node string
	// SpoolDir holds the records JetStream could not take yet
	// (<data_dir>/audit-spool), created 0700. Required.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; DefaultAuditSpoolBytes when <= 0.
	SpoolMaxBytes int64
	// SpoolSegmentBytes is the size at which a spool segment is sealed;
	// 8 MiB (or an eighth of SpoolMaxBytes if smaller) when <= 0.
	SpoolSegmentBytes int64
	// Buffer bounds the records between Record and the sender;
	// DefaultAuditBuffer when <= 0.
	Buffer int
	// AggregateAbove is the buffer fill from which refusals at accept are
	// merged (per hashed client, reason and second) instead of queued one
	// by one; Buffer/2 when <= 0.
	AggregateAbove int
	// Window bounds the records awaiting their acknowledgement;
	// DefaultAuditWindow when <= 0.
	Window int
	// AckTimeout bounds the wait for one acknowledgement;
	// DefaultAuditAckTimeout when <= 0.
	AckTimeout time.Duration
	// RetryInterval is the first wait before trying JetStream again after
	// a failure (it doubles up to 5 s); 250 ms when <= 0.
	RetryInterval time.Duration
	// LogEvery is the least time between two log lines about dropped
	// records; 10 s when <= 0.
	LogEvery time.Duration
	// Logger receives the publisher's logs; nil discards them.
	Logger *slog.Logger
	// Now stamps records with a zero Time; time.Now when nil.
	Now func() time.Time
}

// AuditPublisherStats counts what became of the records given to Record.
type AuditPublisherStats struct {
	Published     uint64 // records JetStream acknowledged (a merged record once)
	Replayed      uint64 // of Published: read back from the spool
	Spooled       uint64 // records written to the spool
	Merged        uint64 // refusals merged into another record's count
	Dropped       uint64 // refused because the buffer was full or the publisher closed
	SpoolDropped  uint64 // lost because the spool was full
	SpoolErrors   uint64 // lost to a spool write error
	Corrupt       uint64 // spool frames (or segment tails) that failed their checksum
	Invalid       uint64 // refused by Validate
	PublishErrors uint64 // publishes that failed or timed out (their records were spooled)
	SpoolBytes    int64  // bytes the spool holds now, on disk or about to be
}

// pubItem is one encoded record on its way.
type pubItem struct {
	id  string
	buf []byte // the record's JSON, the message body
}

// flight is a record awaiting its acknowledgement.
type flight struct {
	f          jetstream.PubAckFuture
	it         *pubItem
	replay     bool     // read from the spool; start and end locate it
	start, end spoolPos // replay only
}

type aggKey struct {
	client, reason string
	sec            int64
}

// AuditPublisher publishes audit records to JetStream, one message per
// record with Nats-Msg-Id set to the record's ID, so that JetStream's
// duplicate window stores a record sent twice once.
//
// Record never blocks: it validates and encodes the record into a bounded
// buffer that one sender goroutine drains. The sender publishes
// asynchronously, up to Window records awaiting acknowledgement. When a
// publish fails or times out (broker down, stream without quorum), the
// records awaiting acknowledgement and every later one go to an on-disk
// spool, in order; the sender tries JetStream again after a backoff, one
// record first, and once it takes records again replays the spool in
// order, with the original IDs, deleting segments as they are
// acknowledged; new records join the spool's end until it is empty. The
// spool also takes the overflow while the window is full and the buffer
// fills up. A full spool drops records, counted and logged (at most every
// LogEvery).
//
// While the buffer is above AggregateAbove, refusals at accept of the same
// hashed client for the same reason within the same second of their Time
// are merged into the first one, whose Count they raise, instead of being
// queued one by one.
//
// Lifecycle: OpenAuditPublisher, then Record from any goroutine, then
// Close.
type AuditPublisher struct {
	cfg AuditPublisherConfig
	js  jetstream.JetStream
	// pubOpts: no retry of its own when no stream answers; the sender
	// spools and retries, and an abandoned publish must not be sent again
	// behind its back.
	pubOpts []jetstream.PublishOpt
	log     *slog.Logger
	node    string
	ids     *recordIDs

	pool  sync.Pool // of *pubItem
	mu    sync.RWMutex
	quit  bool // under mu: Close has begun
	queue chan *pubItem

	aggMu sync.Mutex
	agg   map[aggKey]*AuditRecord

	published, replayed, spooled, merged, dropped  atomic.Uint64
	spoolDropped, spoolErrs, corrupt, invalid, pub atomic.Uint64

	// The sender's own state.
	spool    *auditSpool
	fl       []flight // FIFO: fl[0] is the oldest
	direct   int      // flights not from the spool
	offline  bool     // waiting to try JetStream again
	probe    bool     // trying again: one record in flight until it is acknowledged
	backoff  time.Duration
	lastLog  time.Time
	loggedAt [2]uint64 // dropped, spoolDropped at the last log line

	abort     chan struct{}
	abortOnce sync.Once
	done      chan struct{}
	closeErr  error
}

// OpenAuditPublisher opens the spool (replaying what an earlier run left
// there first) and starts the sender.
func OpenAuditPublisher(cfg AuditPublisherConfig) (*AuditPublisher, error) {
	return openAuditPublisher(cfg, nil)
}

// openAuditPublisher is OpenAuditPublisher whose sender, when gate is not
// nil, starts only once gate is closed: tests fill the buffer with it.
func openAuditPublisher(cfg AuditPublisherConfig, gate <-chan struct{}) (*AuditPublisher, error) {
	if cfg.Conn == nil || cfg.SpoolDir == "" {
		return nil, errors.New("audit publisher: a connection and a spool directory are required")
	}
	if cfg.Subject == "" || strings.ContainsAny(cfg.Subject, "*> \t\r\n") {
		return nil, fmt.Errorf("audit publisher: subject %q: want a literal subject", cfg.Subject)
	}
	if cfg.Node == "" {
		cfg.Node = defaultNode()
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultAuditBuffer
	}
	if cfg.AggregateAbove <= 0 {
		cfg.AggregateAbove = cfg.Buffer / 2
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultAuditWindow
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAuditAckTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = defaultRetryInterval
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = defaultLogEvery
	}
	if cfg.SpoolMaxBytes <= 0 {
		cfg.SpoolMaxBytes = DefaultAuditSpoolBytes
	}
	if cfg.SpoolSegmentBytes <= 0 {
		cfg.SpoolSegmentBytes = min(defaultSpoolSegment, max(cfg.SpoolMaxBytes/8, 4096))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.Conn,
		// Room for the futures of flights given up after a failure, which
		// stay pending until they time out.
		jetstream.WithPublishAsyncMaxPending(2*cfg.Window+64),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("audit publisher: %w", err)
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.SpoolSegmentBytes)
	if err != nil {
		return nil, err
	}
	p := &AuditPublisher{
		cfg:     cfg,
		js:      js,
		pubOpts: []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
		log:     logger,
		node:    cfg.Node,
		ids:     newRecordIDs(cfg.Node),
		queue:   make(chan *pubItem, cfg.Buffer),
		agg:     map[aggKey]*AuditRecord{},
		spool:   sp,
		backoff: cfg.RetryInterval,
		abort:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	p.pool.New = func() any { return &pubItem{buf: make([]byte, 0, 512)} }
	if !sp.empty() {
		logger.Info("audit: replaying the spool of an earlier run", "dir", cfg.SpoolDir, "bytes", sp.size)
	}
	go func() {
		if gate != nil {
			<-gate
		}
		p.run()
	}()
	return p, nil
}

// Record queues r for publishing and reports whether it was taken (queued,
// or merged into another record). It sets r.ID to "<node>/<boot>/<seq>"
// if empty (an ID the audit file gave it is kept, so both name the record
// alike), r.Node to the publisher's node if empty, and r.Time to Now() in
// UTC if zero. It never blocks: a record that fails Validate is counted
// as Invalid, one that finds the buffer full or the publisher closed as
// Dropped; both return false.
func (p *AuditPublisher) Record(r *AuditRecord) bool { return p.record(r, nil) }

// record is Record; encoded, when not nil, is r.AppendJSON of a record
// that passed Validate (the audit file's line, see RecordToBoth), copied
// instead of checking and encoding r again.
func (p *AuditPublisher) record(r *AuditRecord, encoded []byte) bool {
	if r.Node == "" {
		r.Node = p.node
	}
	if r.Time.IsZero() {
		r.Time = p.cfg.Now().UTC()
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.quit {
		p.dropped.Add(1)
		return false
	}
	if r.Stage == StageAccept && r.Count <= 1 && len(p.queue) >= p.cfg.AggregateAbove && p.merge(r) {
		return true
	}
	if r.ID == "" {
		r.ID = p.ids.next()
	}
	if encoded == nil && r.Validate() != nil {
		p.invalid.Add(1)
		return false
	}
	it := p.pool.Get().(*pubItem)
	it.id = r.ID
	if encoded != nil {
		it.buf = append(it.buf[:0], encoded...)
	} else {
		it.buf = r.AppendJSON(it.buf[:0])
	}
	select {
	case p.queue <- it:
		return true
	default:
		p.putItem(it)
		p.dropped.Add(1)
		return false
	}
}

// merge adds r to the refusals of its client, reason and second, and
// reports false when it cannot (too many keys, or r is invalid).
func (p *AuditPublisher) merge(r *AuditRecord) bool {
	key := aggKey{client: r.Client, reason: r.Reason, sec: r.Time.Unix()}
	p.aggMu.Lock()
	defer p.aggMu.Unlock()
	if e, ok := p.agg[key]; ok {
		e.Count++
		p.merged.Add(1)
		return true
	}
	if len(p.agg) >= p.cfg.Buffer {
		return false
	}
	if r.ID == "" {
		r.ID = p.ids.next()
	}
	if r.Validate() != nil {
		return false
	}
	rec := *r
	rec.Count = 1
	p.agg[key] = &rec
	return true
}

func (p *AuditPublisher) putItem(it *pubItem) {
	if cap(it.buf) <= maxPooledLine {
		p.pool.Put(it)
	}
}

// Stats returns the publisher's counters.
func (p *AuditPublisher) Stats() AuditPublisherStats {
	return AuditPublisherStats{
		Published:     p.published.Load(),
		Replayed:      p.replayed.Load(),
		Spooled:       p.spooled.Load(),
		Merged:        p.merged.Load(),
		Dropped:       p.dropped.Load(),
		SpoolDropped:  p.spoolDropped.Load(),
		SpoolErrors:   p.spoolErrs.Load(),
		Corrupt:       p.corrupt.Load(),
		Invalid:       p.invalid.Load(),
		PublishErrors: p.pub.Load(),
		SpoolBytes:    p.spool.depth.Load(),
	}
}

// Close stops taking records, sends what the buffer holds and what the
// spool holds while JetStream takes them, waits for the records in flight
// (those that fail are spooled) and closes the spool, which keeps whatever
// JetStream has not taken for the next run. If ctx ends first, the records in flight and in the buffer are
// spooled at once (a record that JetStream stored meanwhile is stored
// once: its ID) and Close returns ctx's error.
func (p *AuditPublisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.quit {
		p.quit = true
		close(p.queue)
	}
	p.mu.Unlock()
	select {
	case <-p.done:
		return p.closeErr
	case <-ctx.Done():
		p.abortOnce.Do(func() { close(p.abort) })
		<-p.done
		return errors.Join(fmt.Errorf("close audit publisher: %w", ctx.Err()), p.closeErr)
	}
}

// run is the sender goroutine.
func (p *AuditPublisher) run() {
	defer close(p.done)
	tick := time.NewTicker(auditTick)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	armed := false
	queue := p.queue
	for {
		p.pump()
		if p.offline && !armed {
			retry.Reset(p.backoff)
			armed = true
		}
		var okC <-chan *jetstream.PubAck
		var errC <-chan error
		if len(p.fl) > 0 {
			okC, errC = p.fl[0].f.Ok(), p.fl[0].f.Err()
		}
		var qC chan *pubItem
		if queue != nil && p.canTake() {
			qC = queue
		}
		select {
		case it, ok := <-qC:
			if !ok {
				queue = nil
				p.flushAggregates(true)
				break
			}
			p.take(it)
			for i := 0; i < auditBatch && p.canTake(); i++ {
				select {
				case it, ok := <-queue:
					if !ok {
						queue = nil
						p.flushAggregates(true)
						i = auditBatch
						break
					}
					p.take(it)
				default:
					i = auditBatch
				}
			}
		case <-okC:
			p.acked()
			p.ackResolved()
		case err := <-errC:
			p.failed(err)
		case <-retry.C:
			armed = false
			p.offline, p.probe = false, true
		case <-tick.C:
			p.flushAggregates(false)
			p.flushSpool()
			p.logDrops()
		case <-p.abort:
			p.abandon(queue)
			return
		}
		if queue == nil && len(p.fl) == 0 && (p.spool.empty() || p.offline) {
			p.finish()
			return
		}
	}
}

// canTake reports whether the sender takes records from the buffer now:
// always unless the window is full, and then too once the buffer is a
// quarter full (the overflow goes to the spool).
func (p *AuditPublisher) canTake() bool {
	return len(p.fl) < p.cfg.Window || !p.spool.empty() || p.offline || len(p.queue) >= p.cfg.Buffer/4
}

// take publishes it at once when nothing waits before it (the spool is
// empty and JetStream takes records) and the window has room; otherwise
// it joins the spool's end.
func (p *AuditPublisher) take(it *pubItem) {
	if p.spool.empty() && !p.offline && len(p.fl) < p.cfg.Window {
		p.publish(it)
		return
	}
	p.toSpool(it)
}

func (p *AuditPublisher) toSpool(it *pubItem) {
	ok, err := p.spool.append(it.id, it.buf)
	switch {
	case err != nil:
		p.spoolErrs.Add(1)
		p.log.Error("audit: spool write failed; record lost", "err", err)
	case !ok:
		p.spoolDropped.Add(1)
	default:
		p.spooled.Add(1)
	}
	p.putItem(it)
}

// publish sends a record that is not from the spool.
func (p *AuditPublisher) publish(it *pubItem) {
	f, err := p.js.PublishMsgAsync(p.msg(it), p.pubOpts...)
	if err != nil {
		p.pub.Add(1)
		p.fl = append(p.fl, flight{it: it})
		p.direct++
		p.failDirect(err)
		return
	}
	p.fl = append(p.fl, flight{f: f, it: it})
	p.direct++
}

func (p *AuditPublisher) msg(it *pubItem) *nats.Msg {
	return &nats.Msg{Subject: p.cfg.Subject, Data: it.buf, Header: nats.Header{jetstream.MsgIDHeader: []string{it.id}}}
}

// pump sends records from the spool while JetStream takes them and the
// window has room, once no record sent directly is in flight (they come
// before the spool's).
func (p *AuditPublisher) pump() {
	limit := p.cfg.Window
	if p.probe {
		limit = 1
	}
	for !p.offline && p.direct == 0 && !p.spool.empty() && len(p.fl) < limit {
		it := p.pool.Get().(*pubItem)
		start := p.spool.pos()
		end, ok, err := p.spool.next(it)
		p.corrupt.Store(p.spool.corrupt)
		if err != nil || !ok {
			p.putItem(it)
			if err != nil {
				p.spoolErrs.Add(1)
				p.log.Error("audit: spool read failed", "err", err)
				p.goOffline()
				return
			}
			if len(p.fl) == 0 {
				if err := p.spool.drained(); err != nil {
					p.log.Warn("audit: spool", "err", err)
				}
			}
			return
		}
		f, err := p.js.PublishMsgAsync(p.msg(it), p.pubOpts...)
		if err != nil {
			p.pub.Add(1)
			p.rewindTo(start)
			return
		}
		p.fl = append(p.fl, flight{f: f, it: it, replay: true, start: start, end: end})
	}
}

// acked handles the acknowledgement of the oldest flight.
func (p *AuditPublisher) acked() {
	fl := p.fl[0]
	p.fl[0] = flight{}
	p.fl = p.fl[1:]
	p.published.Add(1)
	if p.probe {
		p.probe = false
		p.backoff = p.cfg.RetryInterval
		p.log.Info("audit: JetStream takes records again; replaying the spool")
	}
	if fl.replay {
		p.replayed.Add(1)
		if err := p.spool.ack(fl.end); err != nil {
			p.log.Warn("audit: spool", "err", err)
		}
	} else {
		p.direct--
	}
	p.putItem(fl.it)
	if len(p.fl) == 0 {
		p.fl = p.fl[:0:0] // let the backing array go
	}
}

// ackResolved handles the flights whose acknowledgement has arrived
// already, oldest first, up to the first that is still pending or failed
// (the loop's select takes that one).
func (p *AuditPublisher) ackResolved() {
	for len(p.fl) > 0 {
		select {
		case <-p.fl[0].f.Ok():
			p.acked()
		default:
			return
		}
	}
}

// failed handles the failure of the oldest flight.
func (p *AuditPublisher) failed(err error) {
	p.pub.Add(1)
	if p.fl[0].replay {
		p.rewindTo(p.fl[0].start)
		return
	}
	p.failDirect(err)
}

// failDirect spools every flight (all sent directly, the oldest failed)
// before the spool's records, in order, and goes offline.
func (p *AuditPublisher) failDirect(err error) {
	if lost, serr := p.spoolFlights(); serr != nil {
		p.log.Error("audit: spool write failed; records lost", "records", lost, "err", serr)
	}
	p.log.Warn("audit: JetStream does not take records; spooling them", "err", err, "spool", p.cfg.SpoolDir)
	p.goOffline()
}

// spoolFlights empties the window, putting the records of its flights
// (all sent directly) before the spool's, in order, and counts each as
// spooled, or lost to the spool's error or to a full spool. It returns
// how many were lost and the spool's error.
func (p *AuditPublisher) spoolFlights() (lost int, err error) {
	items := make([]*pubItem, len(p.fl))
	for i := range p.fl {
		items[i] = p.fl[i].it // not put back: a future not yet resolved may still read it
	}
	p.fl, p.direct = nil, 0
	n, err := p.spool.prepend(items)
	p.spooled.Add(uint64(n))
	lost = len(items) - n
	if err != nil {
		p.spoolErrs.Add(uint64(lost))
	} else {
		p.spoolDropped.Add(uint64(lost))
	}
	return lost, err
}

// rewindTo drops every flight (all from the spool) and reads the spool
// again from start, after a backoff.
func (p *AuditPublisher) rewindTo(start spoolPos) {
	p.fl = nil
	p.spool.rewind(start)
	if !p.probe {
		p.log.Warn("audit: JetStream does not take records; keeping them in the spool", "spool", p.cfg.SpoolDir)
	}
	p.goOffline()
}

func (p *AuditPublisher) goOffline() {
	if p.probe || p.offline {
		p.backoff = min(2*p.backoff, maxRetryInterval)
	}
	p.offline, p.probe = true, false
}

// flushAggregates sends the merged records of every second that is over
// (all of them when all is true).
func (p *AuditPublisher) flushAggregates(all bool) {
	now := p.cfg.Now().Unix()
	var out []*AuditRecord
	p.aggMu.Lock()
	for k, r := range p.agg {
		if all || k.sec < now {
			out = append(out, r)
			delete(p.agg, k)
		}
	}
	p.aggMu.Unlock()
	for _, r := range out {
		it := p.pool.Get().(*pubItem)
		it.id = r.ID
		it.buf = r.AppendJSON(it.buf[:0])
		p.take(it)
	}
}

func (p *AuditPublisher) flushSpool() {
	if err := p.spool.flush(); err != nil {
		p.log.Error("audit: spool flush failed", "err", err)
	}
}

// logDrops logs, at most every LogEvery, the records dropped since the
// last line.
func (p *AuditPublisher) logDrops() {
	d, sd := p.dropped.Load(), p.spoolDropped.Load()
	if d == p.loggedAt[0] && sd == p.loggedAt[1] {
		return
	}
	now := p.cfg.Now()
	if now.Sub(p.lastLog) < p.cfg.LogEvery {
		return
	}
	p.log.Warn("audit: records dropped",
		"buffer_full", d-p.loggedAt[0], "spool_full", sd-p.loggedAt[1],
		"total_buffer_full", d, "total_spool_full", sd, "spool", p.cfg.SpoolDir)
	p.lastLog, p.loggedAt = now, [2]uint64{d, sd}
}

// abandon ends the sender on Close's deadline: flights sent directly and
// everything still buffered are spooled, in order.
func (p *AuditPublisher) abandon(queue chan *pubItem) {
	if p.direct > 0 {
		p.spoolFlights()
	}
	p.fl, p.direct = nil, 0
	p.offline = true // everything below goes to the spool
	if queue != nil {
		for it := range queue {
			p.toSpool(it)
		}
	}
	p.flushAggregates(true)
	p.finish()
}

// finish closes the spool.
func (p *AuditPublisher) finish() {
	p.logDrops()
	if err := p.spool.close(); err != nil {
		p.closeErr = fmt.Errorf("close audit publisher: %w", err)
	}
}
