package gateway

import (
	"net"
	"sync"
	"time"

	"github.com/chimalli/chimalli/ratelimit"
)

// connTable enforces the total and per-client connection caps and keeps
// the open connections so Close can end them.
type connTable struct {
	mu       sync.Mutex
	max      int
	maxPerIP int
	perIP    map[ratelimit.Key]int32
	open     map[net.Conn]bool // true once the request line is in: the connection is busy
}

func (t *connTable) init(max, maxPerIP int) {
	t.max, t.maxPerIP = max, maxPerIP
	t.perIP = make(map[ratelimit.Key]int32)
	t.open = make(map[net.Conn]bool)
}

// acquire registers c for key, or reports false when a cap is reached.
func (t *connTable) acquire(key ratelimit.Key, c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.open) >= t.max || int(t.perIP[key]) >= t.maxPerIP {
		return false
	}
	t.perIP[key]++
	t.open[c] = false
	return true
}

// markBusy records that c has a request in progress: shutdown lets it finish.
func (t *connTable) markBusy(c net.Conn) {
	t.mu.Lock()
	t.open[c] = true
	t.mu.Unlock()
}

// interruptIdle makes every connection that has no request in progress
// (handshaking, or waiting for its request line) give up now.
func (t *connTable) interruptIdle(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, busy := range t.open {
		if !busy {
			c.SetDeadline(now)
		}
	}
}

func (t *connTable) release(key ratelimit.Key, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
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
