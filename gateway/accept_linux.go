//go:build linux && !386

package gateway

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// The Linux accept path exists because refusing a client at accept is the
// gateway's answer to a flood, so a refusal must cost as little as the
// kernel allows. net.Listener.Accept prepares every socket for a long
// life: after accept4 it registers it with epoll, calls getsockname, sets
// TCP_NODELAY and keep-alive (five setsockopts); refusing then adds
// SO_LINGER, epoll deregistration and close: eleven syscalls where three
// do the job. Here accept4 runs on the listener inside the netpoller,
// draining the backlog on each wake-up; the layers run on the address
// accept4 returns; a refused socket gets SO_LINGER {1, 0} and close, that
// is an RST, and never becomes a Go file. Only an admitted socket becomes
// a net.Conn.
//
// The three are raw syscalls: none can block (the sockets are
// non-blocking, and a zero linger makes close send the RST and return), so
// the scheduler need not hand the P to another thread while they run.
// With syscall.Syscall, which allows that, a lone accept goroutine spent
// 10–20 µs more per refusal on thread hand-offs and futex wake-ups.
//
// BenchmarkAcceptRefusals (server on one core of a 2-core VM, load 1–1.7):
// 59–67 cpu-µs/refusal before, 35–38 after, about 27,000 refusals/s per
// core. What remains is the kernel: close 45% (the RST, and on loopback
// its delivery to the client), accept4 31% (a socket, an inode and a file
// per connection), netpoller wake-ups 12%; the layers take 2%.

// acceptBatch bounds the connections accepted per wake-up, so a backlog
// that never drains still lets the loop see shutdown and yield to the
// handshakes of admitted clients.
const acceptBatch = 64

// acceptLoop accepts on a *net.TCPListener directly; any other listener
// (a wrapper, a unix socket) goes through the portable acceptConns.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	tl, ok := s.ln.(*net.TCPListener)
	if !ok {
		s.acceptConns()
		return
	}
	// A TCPListener's own RawConn refuses Read, so wait on a duplicate of
	// its socket as a pollable *os.File. The duplicate keeps the socket
	// listening after Close closes s.ln: an expired deadline wakes the
	// loop at shutdown, and the loop closes the duplicate on its way out.
	lf, err := tl.File()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Error("accept: portable path", "err", err)
		}
		s.acceptConns()
		return
	}
	defer lf.Close()
	stop := context.AfterFunc(s.ctx, func() { lf.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := lf.SyscallConn()
	if err != nil {
		s.log.Error("accept loop stopped", "err", err)
		return
	}
	var backoff time.Duration
	for s.ctx.Err() == nil {
		n, err := s.acceptRaw(rc)
		if n > 0 {
			backoff = 0
		}
		if err != nil && !s.acceptFailed(err, &backoff) {
			return
		}
		if n == acceptBatch {
			runtime.Gosched()
		}
	}
}

// acceptRaw accepts and admits up to acceptBatch connections, waiting in
// the netpoller whenever the backlog is empty. It returns early on an
// accept error, or at shutdown.
func (s *Server) acceptRaw(rc syscall.RawConn) (n int, err error) {
	rerr := rc.Read(func(lfd uintptr) bool {
		for n < acceptBatch {
			var sa syscall.RawSockaddrAny
			salen := uint32(syscall.SizeofSockaddrAny)
			fd, _, errno := syscall.RawSyscall6(syscall.SYS_ACCEPT4, lfd,
				uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)),
				syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
			switch errno {
			case 0:
				n++
				s.admitFD(int(fd), sockaddrAddrPort(&sa))
			case syscall.EAGAIN:
				return false // backlog empty: wait for readiness
			case syscall.EINTR, syscall.ECONNABORTED:
				// Interrupted, or the client left while queued: next one.
			default:
				err = os.NewSyscallError("accept4", errno)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// admitFD runs admission on an accepted socket. A refused one is reset and
// closed here; an admitted one becomes a net.Conn for serveConn.
func (s *Server) admitFD(fd int, addr netip.AddrPort) {
	adm, key, refused := s.admit(addr.Addr())
	if refused != ReasonNone {
		// Reset rather than linger in TIME_WAIT: the peer is unwelcome.
		l := syscall.Linger{Onoff: 1}
		syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, syscall.SO_LINGER,
			uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
		syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
		return
	}
	c, err := newSockConn(fd, s.ln.Addr(), addr)
	if err != nil {
		s.conns.release(key, nil)
		s.log.Error("accept", "err", err)
		return
	}
	s.serve(c, addr, key, adm)
}

// sockConn is an admitted socket as a net.Conn: an *os.File on the
// non-blocking socket, so that reads, writes and deadlines go through Go's
// netpoller like a *net.TCPConn's. net.FileConn would duplicate the
// socket, register both copies with epoll and set keep-alive, eleven
// syscalls more per connection than the two this takes (TCP_NODELAY and
// the epoll registration). Keep-alive is pointless here: the handshake,
// request and write timeouts bound every wait of a Gemini connection.
type sockConn struct {
	*os.File
	local, remote net.Addr
}

var _ net.Conn = (*sockConn)(nil)

func newSockConn(fd int, local net.Addr, remote netip.AddrPort) (*sockConn, error) {
	// No Nagle delay for the last segment of a response: it leaves with
	// close_notify and the FIN.
	one := 1
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY,
		uintptr(unsafe.Pointer(&one)), unsafe.Sizeof(one), 0); errno != 0 {
		syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
		return nil, os.NewSyscallError("setsockopt", errno)
	}
	f := os.NewFile(uintptr(fd), "")
	if f == nil {
		return nil, os.NewSyscallError("newfile", syscall.EBADF)
	}
	return &sockConn{File: f, local: local, remote: net.TCPAddrFromAddrPort(remote)}, nil
}

func (c *sockConn) LocalAddr() net.Addr  { return c.local }
func (c *sockConn) RemoteAddr() net.Addr { return c.remote }

// CloseWrite sends a FIN: the client sees the end of the response while
// the socket can still read what it sends.
func (c *sockConn) CloseWrite() error {
	rc, err := c.File.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) { err = syscall.Shutdown(int(fd), syscall.SHUT_WR) })
	if cerr != nil {
		return cerr
	}
	return err
}

// sockaddrAddrPort converts accept4's peer address, unmapping IPv4-mapped
// IPv6; the zero AddrPort for another family. An IPv6 zone is dropped: the
// layers match prefixes, which ignore zones, and naming the interface
// would cost a syscall.
func sockaddrAddrPort(sa *syscall.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		in := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), ntohs(in.Port))
	case syscall.AF_INET6:
		in := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr).Unmap(), ntohs(in.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port stored in network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
