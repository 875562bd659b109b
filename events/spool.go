package events

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// The audit spool is a directory of append-only segment files, named by a
// 20-digit number and read in that order. Each frame is
//
//	length  uint32, big endian: of the payload
//	crc     uint32, big endian: CRC-32C of the payload
//	payload idLen uint16 | id | body (the record's JSON)
//
// A frame that does not check out (a tail torn by a crash, a flipped bit)
// ends its segment: the rest of it is skipped and counted.
const (
	spoolDirMode   = 0o700
	spoolFileMode  = 0o600
	spoolSuffix    = ".seg"
	spoolHeader    = 8
	spoolFirstSeg  = 1 << 32 // new spools count up from here, prepended segments down
	maxSpoolIDLen  = 1<<16 - 1
	maxSpoolFrame  = 1 << 20 // far above any valid record; a larger length is corruption
	spoolReadBufSz = 64 << 10
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// ErrUnsafeSpool is returned by OpenAuditPublisher for a spool directory,
// or a segment in it, that group or others may access.
var ErrUnsafeSpool = errors.New("unsafe audit spool")

// spoolPos is a place in the spool: a segment and an offset in it.
type spoolPos struct {
	seg uint64
	off int64
}

type spoolSeg struct {
	n    uint64
	size int64 // bytes written, including those still in the writer's buffer
}

// auditSpool is the publisher's on-disk queue of records JetStream has not
// taken. It is used by the publisher's goroutine only.
//
// Fsync policy: frames go through a buffered writer that the publisher
// flushes to the OS at least every tick and before reading its own tail, so
// a crash of the process loses nothing that was flushed; a segment is
// fsynced when it is sealed and at close. A crash of the machine may lose
// the unsynced tail of the last segment (the checksums find where it
// ends). The spool guards against NATS being unreachable, not against the
// node's own crash: records wait in memory before they reach either.
type auditSpool struct {
	dir    string
	max    int64 // bound on the bytes of all segments
	segMax int64 // a segment is sealed once it reaches this size
	segs   []spoolSeg
	size   int64
	// depth mirrors size for readers on other goroutines (Stats).
	depth atomic.Int64

	w  *os.File // appends to segs[len(segs)-1] when not nil
	bw *bufio.Writer

	r    *os.File
	br   *bufio.Reader
	rpos spoolPos // next frame to read; seg 0: the start of the first segment

	corrupt uint64 // frames (or segment tails) skipped
	frame   []byte
}

// openSpool opens the spool in dir, creating it with mode 0700. Segments
// left by an earlier run are read first.
func openSpool(dir string, maxBytes, segMax int64) (*auditSpool, error) {
	if err := os.MkdirAll(dir, spoolDirMode); err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s: not a directory", ErrUnsafeSpool, dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s: mode %04o lets group or others in, want %04o", ErrUnsafeSpool, dir, perm, spoolDirMode)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	s := &auditSpool{dir: dir, max: maxBytes, segMax: segMax}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), spoolSuffix)
		if !ok || len(name) != 20 {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("audit spool: %w", err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s: not a regular file", ErrUnsafeSpool, s.path(n))
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s: mode %04o lets group or others in, want %04o", ErrUnsafeSpool, s.path(n), perm, spoolFileMode)
		}
		s.segs = append(s.segs, spoolSeg{n: n, size: info.Size()})
		s.size += info.Size()
		s.depth.Store(s.size)
	}
	slices.SortFunc(s.segs, func(a, b spoolSeg) int { return cmp.Compare(a.n, b.n) })
	return s, nil
}

func (s *auditSpool) path(n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", n, spoolSuffix))
}

// empty reports whether the spool holds no segment.
func (s *auditSpool) empty() bool { return len(s.segs) == 0 }

func frameSize(id string, body []byte) int64 {
	return int64(spoolHeader + 2 + len(id) + len(body))
}

// appendFrame encodes one frame onto dst.
func appendFrame(dst []byte, id string, body []byte) []byte {
	n := 2 + len(id) + len(body)
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	dst = append(dst, body...)
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+spoolHeader:], crc32c))
	return dst
}

// append adds a record at the end. It reports false, writing nothing,
// when the record would take the spool over its bound.
func (s *auditSpool) append(id string, body []byte) (bool, error) {
	if len(id) > maxSpoolIDLen {
		return false, errors.New("audit spool: id too long")
	}
	fs := frameSize(id, body)
	if s.size+fs > s.max {
		return false, nil
	}
	if s.w == nil || s.segs[len(s.segs)-1].size >= s.segMax {
		if err := s.rotate(); err != nil {
			return false, err
		}
	}
	s.frame = appendFrame(s.frame[:0], id, body)
	if _, err := s.bw.Write(s.frame); err != nil {
		// The segment's tail is unknown now: seal it where it is.
		s.bw.Reset(s.w)
		s.w.Close()
		s.w = nil
		return false, fmt.Errorf("audit spool: %w", err)
	}
	s.segs[len(s.segs)-1].size += fs
	s.size += fs
	s.depth.Store(s.size)
	return true, nil
}

// rotate seals the writer's segment (flush, fsync, close) and starts a
// new one after the last.
func (s *auditSpool) rotate() error {
	if err := s.seal(); err != nil {
		return err
	}
	n := uint64(spoolFirstSeg)
	if len(s.segs) > 0 {
		n = s.segs[len(s.segs)-1].n + 1
	}
	f, err := os.OpenFile(s.path(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, spoolFileMode)
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	s.w = f
	if s.bw == nil {
		s.bw = bufio.NewWriterSize(f, spoolReadBufSz)
	} else {
		s.bw.Reset(f)
	}
	s.segs = append(s.segs, spoolSeg{n: n})
	return nil
}

// seal flushes, syncs and closes the writer's segment, if any.
func (s *auditSpool) seal() error {
	if s.w == nil {
		return nil
	}
	err := errors.Join(s.bw.Flush(), s.w.Sync(), s.w.Close())
	s.w = nil
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

// prepend writes records as a new segment before every other one and
// rewinds the reader to its start. It writes as many as fit in the bound,
// in order, and returns how many.
func (s *auditSpool) prepend(items []*pubItem) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	n := uint64(spoolFirstSeg)
	if len(s.segs) > 0 {
		n = s.segs[0].n - 1
	}
	var buf []byte
	written := 0
	for _, it := range items {
		if s.size+int64(len(buf))+frameSize(it.id, it.buf) > s.max || len(it.id) > maxSpoolIDLen {
			break
		}
		buf = appendFrame(buf, it.id, it.buf)
		written++
	}
	if written == 0 {
		return 0, nil
	}
	if err := writeSynced(s.path(n), buf); err != nil {
		return 0, fmt.Errorf("audit spool: %w", err)
	}
	s.segs = slices.Insert(s.segs, 0, spoolSeg{n: n, size: int64(len(buf))})
	s.size += int64(len(buf))
	s.depth.Store(s.size)
	s.rewind(spoolPos{})
	return written, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, spoolFileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Sync(), f.Close())
}

// flush hands buffered frames to the OS.
func (s *auditSpool) flush() error {
	if s.w == nil || s.bw.Buffered() == 0 {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

// pos returns where the next frame will be read from.
func (s *auditSpool) pos() spoolPos {
	if s.rpos.seg == 0 && len(s.segs) > 0 {
		return spoolPos{seg: s.segs[0].n}
	}
	return s.rpos
}

// rewind makes the next read start at p (the zero spoolPos: the start of
// the first segment).
func (s *auditSpool) rewind(p spoolPos) {
	s.closeReader()
	s.rpos = p
}

func (s *auditSpool) closeReader() {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}

func (s *auditSpool) segIndex(n uint64) int {
	for i := range s.segs {
		if s.segs[i].n == n {
			return i
		}
	}
	return -1
}

// next reads the next record into it (id and buf) and returns the
// position after it. It returns false when the reader is at the end.
func (s *auditSpool) next(it *pubItem) (spoolPos, bool, error) {
	for {
		p := s.pos()
		i := s.segIndex(p.seg)
		if i < 0 {
			return p, false, nil
		}
		seg := s.segs[i]
		if p.off >= seg.size {
			if i == len(s.segs)-1 {
				return p, false, nil
			}
			s.rewind(spoolPos{seg: s.segs[i+1].n})
			continue
		}
		if s.w != nil && i == len(s.segs)-1 {
			if err := s.flush(); err != nil {
				return p, false, err
			}
		}
		if s.r == nil {
			f, err := os.Open(s.path(seg.n))
			if err != nil {
				return p, false, fmt.Errorf("audit spool: %w", err)
			}
			if _, err := f.Seek(p.off, io.SeekStart); err != nil {
				f.Close()
				return p, false, fmt.Errorf("audit spool: %w", err)
			}
			s.r = f
			if s.br == nil {
				s.br = bufio.NewReaderSize(f, spoolReadBufSz)
			} else {
				s.br.Reset(f)
			}
			s.rpos = p
		}
		n, ok := s.readFrame(it, seg.size-p.off)
		if !ok {
			// Skip the rest of the segment: its tail cannot be trusted.
			s.corrupt++
			s.rewind(spoolPos{seg: seg.n, off: seg.size})
			continue
		}
		s.rpos.off += n
		return s.rpos, true, nil
	}
}

// readFrame reads one frame of at most avail bytes into it.
func (s *auditSpool) readFrame(it *pubItem, avail int64) (int64, bool) {
	var hdr [spoolHeader]byte
	if avail < spoolHeader+2 {
		return 0, false
	}
	if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
		return 0, false
	}
	n := int64(binary.BigEndian.Uint32(hdr[:4]))
	if n < 2 || n > maxSpoolFrame || spoolHeader+n > avail {
		return 0, false
	}
	s.frame = slices.Grow(s.frame[:0], int(n))[:n]
	if _, err := io.ReadFull(s.br, s.frame); err != nil {
		return 0, false
	}
	if crc32.Checksum(s.frame, crc32c) != binary.BigEndian.Uint32(hdr[4:]) {
		return 0, false
	}
	idLen := int(binary.BigEndian.Uint16(s.frame[:2]))
	if 2+idLen > len(s.frame) {
		return 0, false
	}
	it.id = string(s.frame[2 : 2+idLen])
	it.buf = append(it.buf[:0], s.frame[2+idLen:]...)
	return spoolHeader + n, true
}

// ack says every record before p was acknowledged: segments wholly before
// p's are deleted.
func (s *auditSpool) ack(p spoolPos) error {
	var errs []error
	for len(s.segs) > 1 && s.segs[0].n < p.seg {
		errs = append(errs, s.remove(0))
	}
	return errors.Join(errs...)
}

// drained deletes every segment: the reader is at the end and every record
// read was acknowledged.
func (s *auditSpool) drained() error {
	s.closeReader()
	var errs []error
	if s.w != nil {
		s.bw.Reset(s.w)
		errs = append(errs, s.w.Close())
		s.w = nil
	}
	for len(s.segs) > 0 {
		errs = append(errs, s.remove(0))
	}
	s.rpos = spoolPos{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

func (s *auditSpool) remove(i int) error {
	seg := s.segs[i]
	if s.r != nil && s.rpos.seg == seg.n {
		s.closeReader()
	}
	s.segs = slices.Delete(s.segs, i, i+1)
	s.size -= seg.size
	s.depth.Store(s.size)
	if err := os.Remove(s.path(seg.n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// close flushes, syncs and closes the files; the segments stay for the
// next run.
func (s *auditSpool) close() error {
	s.closeReader()
	return s.seal()
}
