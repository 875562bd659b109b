package gateway

import (
	"net"
	"sync"

	"github.com/chimalli/chimalli/ratelimit"
)

// connTable enforces the total and per-client connection caps and keeps
// the open connections so Close can end them.
type connTable struct {
	mu       sync.Mutex
	max      int
	maxPerIP int
	n        int // slots held, all clients
	perIP    map[ratelimit.Key]int32
	open     map[net.Conn]bool // true once the request line is in: the connection is busy
}

func (t *connTable) init(max, maxPerIP int) {
	t.max, t.maxPerIP = max, maxPerIP
	t.perIP = make(map[ratelimit.Key]int32)
	t.open = make(map[net.Conn]bool)
}

// acquire takes a slot for key, or reports false when a cap is reached.
// It needs no net.Conn, so the accept path can refuse a client over its
// cap before making one.
func (t *connTable) acquire(key ratelimit.Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= t.max || int(t.perIP[key]) >= t.maxPerIP {
		return false
	}
	t.n++
	t.perIP[key]++
	return true
}

// track registers c, which holds a slot, so shutdown can reach it.
func (t *connTable) track(c net.Conn) {
	t.mu.Lock()
	t.open[c] = false
	t.mu.Unlock()
}

// markBusy records that c has a request in progress: shutdown lets it finish.
func (t *connTable) markBusy(c net.Conn) {
	t.mu.Lock()
	t.open[c] = true
	t.mu.Unlock()
}

// dropIdle closes every connection that has no request in progress
// (handshaking, or waiting for its request line). Closing, unlike an
// expired deadline, sticks: a handshake that completes meanwhile cannot
// set a fresh deadline and keep the connection waiting.
func (t *connTable) dropIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, busy := range t.open {
		if !busy {
			c.Close()
		}
	}
}

// release gives back key's slot and forgets c (nil when it was never
// tracked).
func (t *connTable) release(key ratelimit.Key, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if n := t.perIP[key]; n <= 1 {
		delete(t.perIP, key)
	} else {
		t.perIP[key] = n - 1
	}
	delete(t.open, c)
}

func (t *connTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

func (t *connTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.open {
		c.Close()
	}
}
