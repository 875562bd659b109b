package gateway

import (
	"net"
	"sync"
	"time"
)

// coalesceLimit is the most a coalescingConn holds back: a TLS record of
// full size (16 KiB of data plus overhead) and anything larger goes out
// directly, after what was held.
const coalesceLimit = 16 << 10

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceLimit); return &b }}

// coalescingConn lets the TLS records a connection writes back to back
// leave in one segment instead of one write system call each: the server's
// handshake flight and session tickets, or a response's last bytes and the
// close_notify alert that follows them; on the upstream side the client's
// Finished and the request line.
//
// While holding, writes are kept (up to coalesceLimit) and sent by the
// next Read, by a write deadline set to now or earlier (crypto/tls does
// that right after close_notify), by CloseWrite or Close, or when the
// buffer is full. When not holding, writes go straight through, so a
// handler that streams is never delayed. Bytes held are sent under the
// write deadline in force when they are sent.
//
// The buffer is taken from a pool at the first held write and returned at
// each flush: an idle connection holds none.
//
// Reads and writes come from one goroutine (the connection's); Close and
// deadline changes may come from another to interrupt it. Those never wait
// for a write in progress: they skip the flush when one is running. A
// deadline in the past set from another goroutine while bytes are held
// (the owner is between a write and its next read) sends them first; that
// write can only block when the socket's send buffer is full, and then
// only until the write deadline already in force.
type coalescingConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  *[]byte
	err  error // sticky write error
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	return &coalescingConn{Conn: c, hold: true}
}

// setHold turns holding on or off; turning it off sends what is held.
func (c *coalescingConn) setHold(hold bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = hold
	if !hold {
		return c.flushLocked()
	}
	return nil
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.hold || len(p) >= coalesceLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		n, err := c.Conn.Write(p)
		if err != nil {
			c.err = err
		}
		return n, err
	}
	if c.buf != nil && len(*c.buf)+len(p) > coalesceLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	if c.buf == nil {
		c.buf = coalescePool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// flushLocked sends what is held and returns the buffer to the pool. With
// nothing held it returns nil even after a failed write (that error went
// to the writer), so that a read can still collect an answer the peer sent
// before it stopped reading.
func (c *coalescingConn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	err := c.err
	if err == nil && len(*b) > 0 {
		if _, err = c.Conn.Write(*b); err != nil {
			c.err = err
		}
	}
	*b = (*b)[:0]
	coalescePool.Put(b)
	return err
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// flushBefore sends what is held before a deadline at t takes effect, when
// t ends writing (now or past). It does not wait for a write in progress
// on another goroutine: that one is what the deadline interrupts.
func (c *coalescingConn) flushBefore(t time.Time) {
	if t.IsZero() || t.After(time.Now()) || !c.mu.TryLock() {
		return
	}
	c.flushLocked()
	c.mu.Unlock()
}

func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.flushBefore(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.flushBefore(t)
	return c.Conn.SetDeadline(t)
}

// CloseWrite sends what is held, then half-closes a TCP connection.
func (c *coalescingConn) CloseWrite() error {
	c.mu.Lock()
	err := c.flushLocked()
	c.mu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		if cerr := cw.CloseWrite(); err == nil {
			err = cerr
		}
	}
	return err
}

// Close sends what is held (unless a write is in progress on another
// goroutine) and closes the connection.
func (c *coalescingConn) Close() error {
	if c.mu.TryLock() {
		c.flushLocked()
		c.mu.Unlock()
	}
	return c.Conn.Close()
}
