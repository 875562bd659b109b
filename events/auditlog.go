package events

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultAuditBuffer is how many encoded records an AuditLog holds for its
// writer before Record starts dropping.
const DefaultAuditBuffer = 4096

// auditFileMode is the mode of an audit file: records name clients, even
// if only by keyed hash, so only the node's user reads them.
const auditFileMode = 0o600

// auditWriteBuffer is the size of the writer's bufio.Writer.
const auditWriteBuffer = 64 << 10

// maxPooledLine is the largest line buffer put back in the pool; a record
// with huge fields does not pin a huge buffer.
const maxPooledLine = 16 << 10

// ErrUnsafeAuditFile is returned by OpenAuditFile for an existing file that
// group or others may access, that is not a regular file, or for a path
// that is a symbolic link.
var ErrUnsafeAuditFile = errors.New("unsafe audit file")

// AuditLogConfig configures an AuditLog.
type AuditLogConfig struct {
	Buffer int              // records queued for the writer; DefaultAuditBuffer when <= 0
	Node   string           // node name in record IDs and empty Node fields; the host name when ""
	Now    func() time.Time // stamps records with a zero Time; time.Now when nil
}

// AuditLogStats counts what became of the records given to Record, each
// once, when its fate is known. After Close has returned nil, Written +
// Dropped + WriteErrors + Invalid is the number of Record calls.
type AuditLogStats struct {
	Written     uint64 // lines the writer accepted
	Dropped     uint64 // records refused because the buffer was full or the log closed
	WriteErrors uint64 // lines lost because the writer returned an error
	Invalid     uint64 // records refused by Validate; never written
}

// AuditLog writes audit records as JSON lines, one per record, to an
// io.Writer. Record never blocks: it encodes the record into a bounded
// queue that one writer goroutine drains, batching lines through a
// bufio.Writer that it flushes whenever the queue runs empty, so a reader
// of the file sees records promptly. When the queue is full, records are
// dropped and counted. AuditLog is safe for concurrent use.
type AuditLog struct {
	w      io.Writer
	closer io.Closer // the file OpenAuditFile opened; nil otherwise
	node   string
	ids    *recordIDs
	now    func() time.Time

	pool  sync.Pool // of *[]byte line buffers
	mu    sync.RWMutex
	quit  bool // under mu: Close has begun; queue is closed
	queue chan *[]byte
	done  chan struct{} // closed when the writer has drained the queue

	written, dropped, writeErrs, invalid atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// OpenAuditFile opens (creating it with mode 0600 if needed) the file at
// path for appending and returns an AuditLog writing to it. It refuses an
// existing file that group or others may access, or that is not a regular
// file, with an error wrapping ErrUnsafeAuditFile that names the path and
// its mode; and a path whose last element is a symbolic link, which it
// never follows (directories above it may be links: the operator chose
// them). The open never blocks, on a FIFO either. Close closes the file.
func OpenAuditFile(path string, cfg AuditLogConfig) (*AuditLog, error) {
	// O_NONBLOCK only makes opening a FIFO fail (ENXIO: no reader) instead
	// of waiting for a reader; writes to a regular file ignore it.
	flags := os.O_APPEND | os.O_CREATE | os.O_WRONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	f, err := os.OpenFile(path, flags, auditFileMode)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil {
			switch mode := fi.Mode(); {
			case mode&fs.ModeSymlink != 0:
				return nil, fmt.Errorf("%w: %s: is a symbolic link; name the file itself", ErrUnsafeAuditFile, path)
			case !mode.IsRegular() && !mode.IsDir():
				return nil, fmt.Errorf("%w: %s: not a regular file (mode %s)", ErrUnsafeAuditFile, path, mode)
			}
		}
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	switch mode := fi.Mode(); {
	case !mode.IsRegular():
		f.Close()
		return nil, fmt.Errorf("%w: %s: not a regular file (mode %s)", ErrUnsafeAuditFile, path, mode)
	case mode.Perm()&0o077 != 0:
		f.Close()
		return nil, fmt.Errorf("%w: %s: mode %04o lets group or others in, want %04o", ErrUnsafeAuditFile, path, mode.Perm(), auditFileMode)
	}
	l := NewAuditLog(f, cfg)
	l.closer = f
	return l, nil
}

// NewAuditLog returns an AuditLog writing to w and starts its writer
// goroutine; Close stops it. It draws a random boot id for the record IDs.
func NewAuditLog(w io.Writer, cfg AuditLogConfig) *AuditLog {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultAuditBuffer
	}
	if cfg.Node == "" {
		cfg.Node = defaultNode()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &AuditLog{
		w:     w,
		node:  cfg.Node,
		ids:   newRecordIDs(cfg.Node),
		now:   cfg.Now,
		queue: make(chan *[]byte, cfg.Buffer),
		done:  make(chan struct{}),
	}
	l.pool.New = func() any {
		b := make([]byte, 0, 512)
		return &b
	}
	go l.run()
	return l
}

// recordIDs draws the IDs "<node>/<boot>/<seq>" of one writer's records:
// boot is random per writer, seq counts from 1. It is safe for concurrent
// use.
type recordIDs struct {
	pfx string // "<node>/<boot>/"
	seq atomic.Uint64
}

func newRecordIDs(node string) *recordIDs {
	var boot [4]byte
	rand.Read(boot[:]) // never fails (crypto/rand since Go 1.24)
	return &recordIDs{pfx: node + "/" + hex.EncodeToString(boot[:]) + "/"}
}

func (g *recordIDs) next() string {
	var b [maxNodeBytes + 32]byte
	id := append(b[:0], g.pfx...)
	return string(strconv.AppendUint(id, g.seq.Add(1), 10))
}

func defaultNode() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "node"
}

// Record queues r for writing and reports whether it was queued. It sets
// r.ID to "<node>/<boot>/<seq>" (seq counts from 1 per AuditLog), r.Node
// to the log's node if empty, and r.Time to Now() in UTC if zero. It never
// blocks: a record that fails Validate is counted as Invalid, and one that
// finds the buffer full or the log closed is counted as Dropped; both
// return false.
func (l *AuditLog) Record(r *AuditRecord) bool { return l.record(r, nil) }

// RecordToBoth records r in the audit file l and then publishes it with p
// under the same ID, as Record on each would, but checks and encodes it
// once: the publisher copies the file's line. It reports whether each
// took the record.
func RecordToBoth(l *AuditLog, p *AuditPublisher, r *AuditRecord) (logged, published bool) {
	handed := false
	logged = l.record(r, func(line []byte) { handed, published = true, p.record(r, line) })
	if !handed {
		// The file refused r before encoding it (invalid): the publisher
		// checks and counts it on its own.
		published = p.record(r, nil)
	}
	return logged, published
}

// record is Record; then, when r passed Validate, it hands the encoded
// line (without its newline) to then before queueing it.
func (l *AuditLog) record(r *AuditRecord, then func(line []byte)) bool {
	r.ID = l.ids.next()
	if r.Node == "" {
		r.Node = l.node
	}
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	if r.Validate() != nil {
		l.invalid.Add(1)
		return false
	}
	bp := l.pool.Get().(*[]byte)
	*bp = r.AppendJSON((*bp)[:0])
	if then != nil {
		then(*bp)
	}
	*bp = append(*bp, '\n')

	l.mu.RLock()
	queued := false
	if !l.quit {
		select {
		case l.queue <- bp:
			queued = true
		default:
		}
	}
	l.mu.RUnlock()
	if !queued {
		l.putLine(bp)
		l.dropped.Add(1)
	}
	return queued
}

func (l *AuditLog) putLine(bp *[]byte) {
	if cap(*bp) <= maxPooledLine {
		l.pool.Put(bp)
	}
}

// Stats returns the log's counters.
func (l *AuditLog) Stats() AuditLogStats {
	return AuditLogStats{
		Written:     l.written.Load(),
		Dropped:     l.dropped.Load(),
		WriteErrors: l.writeErrs.Load(),
		Invalid:     l.invalid.Load(),
	}
}

// Close stops taking records, waits until the writer has written and
// flushed every queued one, then syncs and closes the file if
// OpenAuditFile opened it. If ctx ends first, Close returns its error; the
// writer goes on draining, and a later Close waits again. Close is
// idempotent: once the writer is done, every call returns the same error.
func (l *AuditLog) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.quit {
		l.quit = true
		close(l.queue)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("close audit log: %w", ctx.Err())
	}
	l.closeOnce.Do(func() {
		if l.closer == nil {
			return
		}
		var syncErr error
		if f, ok := l.closer.(*os.File); ok {
			syncErr = f.Sync()
		}
		if err := errors.Join(syncErr, l.closer.Close()); err != nil {
			l.closeErr = fmt.Errorf("close audit log: %w", err)
		}
	})
	return l.closeErr
}

// run is the writer goroutine: it drains the queue until Close closes it.
func (l *AuditLog) run() {
	defer close(l.done)
	lw := lineWriter{w: l.w, bw: bufio.NewWriterSize(l.w, auditWriteBuffer), log: l}
	for bp := range l.queue {
		lw.write(*bp)
		l.putLine(bp)
	drain:
		for {
			select {
			case bp, ok := <-l.queue:
				if !ok {
					break drain
				}
				lw.write(*bp)
				l.putLine(bp)
			default:
				break drain
			}
		}
		lw.flush()
	}
	lw.flush()
}

// lineWriter batches whole lines through bw and counts each line as
// written or lost when its fate is known. It flushes before a line that
// does not fit, so bufio never flushes part of a batch on its own and a
// write error is charged to the lines it lost. After an error, the next
// write starts with a newline, so that a line torn by a partial write
// stays apart from the next record.
type lineWriter struct {
	w       io.Writer
	bw      *bufio.Writer
	log     *AuditLog
	pending uint64 // lines in bw since the last flush
	torn    bool
}

func (lw *lineWriter) write(line []byte) {
	if lw.torn {
		// bw was reset by fail and nothing went in since: this cannot fail.
		lw.bw.WriteByte('\n')
		lw.torn = false
	}
	if lw.bw.Available() < len(line) && lw.bw.Buffered() > 0 {
		lw.flush()
	}
	if _, err := lw.bw.Write(line); err != nil { // a line larger than the buffer goes straight to w
		lw.fail(1)
		return
	}
	lw.pending++
}

func (lw *lineWriter) flush() {
	if lw.pending == 0 && lw.bw.Buffered() == 0 {
		return
	}
	if err := lw.bw.Flush(); err != nil {
		lw.fail(0)
		return
	}
	lw.log.written.Add(lw.pending)
	lw.pending = 0
}

// fail charges the pending lines and extra more to WriteErrors and resets
// bw, dropping what it held.
func (lw *lineWriter) fail(extra uint64) {
	lw.log.writeErrs.Add(lw.pending + extra)
	lw.pending = 0
	lw.bw.Reset(lw.w)
	lw.torn = true
}
