package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *countingConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func newCounted(t *testing.T) (*coalescingConn, *countingConn, *net.TCPConn) {
	t.Helper()
	a, b := tcpPair(t)
	cnt := &countingConn{Conn: a}
	return newCoalescingConn(cnt), cnt, b
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	return b
}

func TestCoalesceHeldWritesLeaveTogetherOnRead(t *testing.T) {
	cc, cnt, peer := newCounted(t)
	cc.Write([]byte("flight-1|"))
	cc.Write([]byte("flight-2|"))
	if n := cnt.writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the socket while holding, want 0", n)
	}
	peer.Write([]byte("x"))
	cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cc.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if n := cnt.writes.Load(); n != 1 {
		t.Fatalf("%d writes, want the two held ones as one", n)
	}
	if got := readN(t, peer, 18); string(got) != "flight-1|flight-2|" {
		t.Fatalf("peer got %q", got)
	}
}

func TestCoalesceNotHoldingWritesThrough(t *testing.T) {
	cc, cnt, peer := newCounted(t)
	cc.Write([]byte("held|"))
	if err := cc.setHold(false); err != nil {
		t.Fatal(err)
	}
	if n := cnt.writes.Load(); n != 1 {
		t.Fatalf("turning holding off sent %d writes, want 1", n)
	}
	cc.Write([]byte("a|"))
	cc.Write([]byte("b|"))
	if n := cnt.writes.Load(); n != 3 {
		t.Fatalf("%d writes, want each write through while not holding", n)
	}
	if got := readN(t, peer, 9); string(got) != "held|a|b|" {
		t.Fatalf("peer got %q", got)
	}
}

func TestCoalesceLimit(t *testing.T) {
	cc, cnt, peer := newCounted(t)
	small := bytes.Repeat([]byte("s"), coalesceLimit/2+1)
	cc.Write(small)
	cc.Write(small) // would exceed the limit: the first goes out, the second is held
	if n := cnt.writes.Load(); n != 1 {
		t.Fatalf("%d writes after overflowing the buffer, want 1", n)
	}
	big := bytes.Repeat([]byte("B"), coalesceLimit)
	cc.Write(big) // held bytes first, then the big one directly
	if n := cnt.writes.Load(); n != 3 {
		t.Fatalf("%d writes after a full-size write, want 3", n)
	}
	want := append(append(append([]byte{}, small...), small...), big...)
	if got := readN(t, peer, len(want)); !bytes.Equal(got, want) {
		t.Fatal("peer got the bytes out of order or damaged")
	}
}

func TestCoalesceDeadlineNowSends(t *testing.T) {
	cc, cnt, peer := newCounted(t)
	cc.Write([]byte("response|"))
	cc.SetWriteDeadline(time.Now().Add(time.Minute))
	if n := cnt.writes.Load(); n != 0 {
		t.Fatal("a future deadline must not send held bytes")
	}
	cc.Write([]byte("alert|"))
	// What crypto/tls does right after sending close_notify.
	cc.SetWriteDeadline(time.Now())
	if n := cnt.writes.Load(); n != 1 {
		t.Fatalf("%d writes after a deadline of now, want 1", n)
	}
	if got := readN(t, peer, 15); string(got) != "response|alert|" {
		t.Fatalf("peer got %q", got)
	}
	if _, err := cc.Write([]byte("late")); err == nil {
		// Held, then sent at Close under the past deadline: must fail there.
		if err := cc.Close(); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if rest, _ := io.ReadAll(peer); len(rest) != 0 {
			t.Fatalf("bytes written after the deadline reached the peer: %q", rest)
		}
	}
}

func TestCoalesceCloseWriteAndClose(t *testing.T) {
	cc, _, peer := newCounted(t)
	cc.Write([]byte("last|"))
	if err := cc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "last|" {
		t.Fatalf("peer after CloseWrite: %q, %v; want the held bytes then EOF", got, err)
	}
	// Half-closed: the other direction still works.
	peer.Write([]byte("ok"))
	cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(cc, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}

	cc2, _, peer2 := newCounted(t)
	cc2.Write([]byte("bye"))
	cc2.Close()
	peer2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(peer2); err != nil || string(got) != "bye" {
		t.Fatalf("peer after Close: %q, %v", got, err)
	}
}

type failingConn struct{ net.Conn }

func (failingConn) Write([]byte) (int, error) { return 0, errors.New("broken") }

func TestCoalesceWriteErrorSticks(t *testing.T) {
	a, peer := tcpPair(t)
	cc := newCoalescingConn(failingConn{a})
	if _, err := cc.Write([]byte("x")); err != nil {
		t.Fatal("a held write cannot fail yet")
	}
	if err := cc.setHold(false); err == nil {
		t.Fatal("sending held bytes over a broken conn must fail")
	}
	if _, err := cc.Write([]byte("y")); err == nil {
		t.Fatal("writes after a failure must fail")
	}
	// The peer may have answered before it stopped reading (an upstream
	// refusing an upload): that answer can still be read.
	peer.Write([]byte("59 refused\r\n"))
	cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(cc, got); err != nil || string(got) != "59" {
		t.Fatalf("read after a failed write: %q, %v", got, err)
	}
}

// signalConn reports when a write has started.
type signalConn struct {
	net.Conn
	started chan struct{}
	once    sync.Once
}

func (c *signalConn) Write(p []byte) (int, error) {
	c.once.Do(func() { close(c.started) })
	return c.Conn.Write(p)
}

// Close from another goroutine interrupts a flush blocked on a peer that
// does not read, instead of waiting for it.
func TestCoalesceCloseInterruptsBlockedFlush(t *testing.T) {
	a, b := net.Pipe() // writes block until the peer reads
	defer b.Close()
	sc := &signalConn{Conn: a, started: make(chan struct{})}
	cc := newCoalescingConn(sc)
	cc.Write([]byte("never read"))
	readErr := make(chan error, 1)
	go func() {
		_, err := cc.Read(make([]byte, 1)) // flushes first: blocks in Write
		readErr <- err
	}()
	<-sc.started
	closed := make(chan error, 1)
	go func() { closed <- cc.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a blocked flush")
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the interrupted read reported no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked flush was not interrupted by Close")
	}
}
