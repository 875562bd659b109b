package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
)

var _ Forgiver = (*ratelimit.Limiter)(nil)

// ErrClosed is returned by Bans' commands once the store is closed.
var ErrClosed = errors.New("ban store closed")

// AddrHasher turns a client address into a keyed hash that is safe to log.
type AddrHasher interface {
	HashAddr(addr netip.Addr) string
}

// BansConfig configures a node-local ban store.
type BansConfig struct {
	AutoBan AutoBanPolicy
	Now     func() time.Time // stamps events; time.Now when nil
	Logger  *slog.Logger     // bans are logged at warn; nil discards
	Hasher  AddrHasher       // names clients in logs; nil leaves them out
	Queue   int              // pending commands; 1024 when 0
	// Forgiver is told of every prefix whose active ban is lifted; nil:
	// nobody. The node's rate limiter implements it.
	Forgiver Forgiver
}

// Forgiver forgets what a node holds against the clients inside a prefix
// (their rate-limit buckets and violation counts). *ratelimit.Limiter
// implements it. ResetPrefix is called on the store's goroutine and must
// be safe for concurrent use with the limiter's other methods.
type Forgiver interface {
	ResetPrefix(p netip.Prefix) int
}

// Bans is the node-local ban store: it turns auto-ban reports and operator
// commands into ban events, folds them into a BanState on one goroutine
// and publishes an immutable BanSet after each batch. Readers (Banned,
// View) never block. With the cluster-state issue the events go through
// Raft instead, and every node folds the same ones; this store keeps the
// same surface.
type Bans struct {
	cfg    BansConfig
	now    func() time.Time
	log    *slog.Logger
	view   atomic.Pointer[BanSet]
	cmds   chan banCmd
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	state   *BanState // owned by the run goroutine
	dropped atomic.Uint64
}

type banCmd struct {
	ev   BanEvent
	auto bool          // compute Until from the policy and the prefix's strikes
	dur  time.Duration // operator ban: its length from when it is applied; 0: until lifted (Add validated it)
	done chan error    // nil for fire-and-forget
}

// NewBans returns an unstarted store; Open starts it.
func NewBans(cfg BansConfig) (*Bans, error) {
	if err := cfg.AutoBan.Validate(); err != nil {
		return nil, err
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	b := &Bans{
		cfg:    cfg,
		now:    cfg.Now,
		log:    cfg.Logger,
		cmds:   make(chan banCmd, cfg.Queue),
		closed: make(chan struct{}),
		state:  NewBanState(),
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.view.Store(NewBanSet(nil))
	return b, nil
}

// Open starts applying commands.
func (b *Bans) Open() {
	b.wg.Add(1)
	go b.run()
}

// Close stops the store; commands already queued are dropped. It is
// idempotent.
func (b *Bans) Close() error {
	b.once.Do(func() { close(b.closed) })
	b.wg.Wait()
	return nil
}

// Banned reports whether addr is banned at now. It reads the published
// view: no lock, no allocation. It implements gateway.BanView.
func (b *Bans) Banned(addr netip.Addr, now time.Time) bool {
	return b.view.Load().Banned(addr, now)
}

// View returns the current immutable view.
func (b *Bans) View() *BanSet { return b.view.Load() }

// Dropped returns how many auto-ban reports were dropped because the
// queue was full. A dropped report costs nothing but time: the client is
// reported again at its next refused connection.
func (b *Bans) Dropped() uint64 { return b.dropped.Load() }

// ReportAbuse receives a connection refused by the hard rate limit. When
// res.Violations reaches the policy's threshold, it queues an auto-ban of
// the client's prefix. It never blocks: it runs on the accept loop.
// It implements gateway.AbuseReporter.
func (b *Bans) ReportAbuse(addr netip.Addr, res ratelimit.Result) {
	p := b.cfg.AutoBan
	if !p.Enabled() || res.Verdict != ratelimit.Hard || res.Violations < p.Threshold {
		return
	}
	pfx := p.PrefixOf(addr)
	if !pfx.IsValid() {
		return
	}
	cmd := banCmd{ev: BanEvent{Kind: BanAdded, Prefix: pfx, Reason: "rate_limit", Source: "auto"}, auto: true}
	select {
	case b.cmds <- cmd:
	case <-b.closed:
	default:
		b.dropped.Add(1)
	}
}

// Add applies an operator's ban and returns once it is in the published
// view. A command that fails Validate is refused with its error (wrapping
// ErrInvalidCommand) and changes nothing.
func (b *Bans) Add(ctx context.Context, c BanCommand) error {
	if err := c.Validate(); err != nil {
		return err
	}
	ev := BanEvent{Kind: BanAdded, Prefix: c.Prefix, Reason: c.Reason, Source: "operator"}
	return b.do(ctx, banCmd{ev: ev, dur: c.Duration})
}

// Lift ends prefix's ban and returns once the view no longer holds it.
// When the ban was active, the Forgiver (if any) forgets the rate-limit
// state of every client inside prefix before the view is published, so a
// lifted client starts afresh instead of being banned again at its next
// connection. Its strikes stay: a ban within StrikeMemory still escalates.
func (b *Bans) Lift(ctx context.Context, prefix netip.Prefix) error {
	return b.do(ctx, banCmd{ev: BanEvent{Kind: BanLifted, Prefix: prefix}})
}

func (b *Bans) do(ctx context.Context, cmd banCmd) error {
	cmd.done = make(chan error, 1)
	select {
	case b.cmds <- cmd:
	case <-b.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-cmd.done:
		return err
	case <-b.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxBatch bounds how many commands one view rebuild covers.
const maxBatch = 4096

func (b *Bans) run() {
	defer b.wg.Done()
	var batch []banCmd
	for {
		select {
		case <-b.closed:
			return
		case c := <-b.cmds:
			batch = append(batch[:0], c)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case c := <-b.cmds:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		now := b.now()
		errs := make([]error, len(batch))
		changed := false
		for i, c := range batch {
			var applied bool
			applied, errs[i] = b.apply(c, now)
			changed = changed || applied
		}
		if changed {
			b.view.Store(b.state.View(now))
		}
		for i, c := range batch {
			if c.done != nil {
				c.done <- errs[i]
			}
		}
	}
}

// apply stamps c's event with now, completes it and folds it in. It
// reports whether the state changed.
func (b *Bans) apply(c banCmd, now time.Time) (bool, error) {
	ev := c.ev
	ev.Time = now
	if ev.Kind == BanAdded {
		switch {
		case c.auto:
			prev, ok := b.state.Lookup(ev.Prefix)
			if ok && prev.ActiveAt(now) {
				return false, nil // already banned: a report raced the view
			}
			ev.Until = now.Add(b.cfg.AutoBan.DurationFor(prev.Strikes)) // 0 strikes when absent
		case c.dur > 0:
			ev.Until = now.Add(c.dur)
		}
	}
	var wasActive bool
	if ev.Kind == BanLifted {
		prev, ok := b.state.Lookup(ev.Prefix)
		wasActive = ok && prev.ActiveAt(now)
	}
	if err := b.state.Apply(ev); err != nil {
		return false, fmt.Errorf("apply %s: %w", ev.Kind, err)
	}
	switch {
	case ev.Kind == BanAdded:
		ban, _ := b.state.Lookup(ev.Prefix)
		b.logBan(ban)
	case wasActive && b.cfg.Forgiver != nil:
		// Before the view without the ban is published: until then the
		// client is refused ahead of the limiter, so no connection can
		// find its old, empty bucket and earn a ban again.
		b.cfg.Forgiver.ResetPrefix(normalizePrefix(ev.Prefix))
	}
	return true, nil
}

func (b *Bans) logBan(ban Ban) {
	ctx := context.Background()
	if !b.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{
		slog.String("source", ban.Source), slog.String("reason", ban.Reason),
		slog.Int("strikes", ban.Strikes), slog.Int("prefix_bits", ban.Prefix.Bits()),
	}
	if b.cfg.Hasher != nil {
		attrs = append(attrs, slog.String("client", b.cfg.Hasher.HashAddr(ban.Prefix.Addr())))
	}
	if !ban.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", ban.Until))
	}
	b.log.LogAttrs(ctx, slog.LevelWarn, "ban added", attrs...)
}
