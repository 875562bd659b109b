package gateway

import (
	"crypto/tls"
	"testing"
	"time"
)

func TestLocalTicketKeysRotation(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	k := NewLocalTicketKeys(time.Hour, 30*time.Minute)
	first := k.TicketKeys(t0)
	if len(first) != 1 {
		t.Fatalf("%d keys at start, want 1", len(first))
	}
	if again := k.TicketKeys(t0.Add(59 * time.Minute)); &again[0] != &first[0] {
		t.Fatal("keys changed before the rotation")
	}
	rotated := k.TicketKeys(t0.Add(time.Hour))
	if len(rotated) != 2 || rotated[1] != first[0] || rotated[0] == first[0] {
		t.Fatalf("after the rotation: want a new key first and the old one second")
	}
	if got := k.TicketKeys(t0.Add(time.Hour + 29*time.Minute)); len(got) != 2 {
		t.Fatalf("retired key forgotten before keep passed: %d keys", len(got))
	}
	if got := k.TicketKeys(t0.Add(time.Hour + 30*time.Minute)); len(got) != 1 || got[0] != rotated[0] {
		t.Fatalf("retired key kept past keep: %d keys", len(got))
	}
	// After a long idle the key that sealed until now is retired now: it
	// may have sealed a ticket a moment ago.
	if got := k.TicketKeys(t0.Add(10 * time.Hour)); len(got) != 2 || got[1] != rotated[0] {
		t.Fatalf("after a long idle: %d keys, want the new one and the last one", len(got))
	}
}

// testSessionState returns a real server SessionState from a loopback
// handshake, captured by WrapSession.
func testSessionState(t testing.TB) *tls.SessionState {
	t.Helper()
	pair, _, _ := genPair(t, "localhost", time.Now(), 1)
	got := make(chan *tls.SessionState, 1)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{pair}, WrapSession: func(_ tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		got <- ss
		return []byte{1}, nil
	}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		s.Write([]byte("x"))
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Read(make([]byte, 1))
	return <-got
}

// TestTicketSealOpen: a ticket opens under its host with a key still in
// force, and under nothing else.
func TestTicketSealOpen(t *testing.T) {
	ss := testSessionState(t)
	t0 := time.Unix(1_700_000_000, 0)
	tk := &ticketer{keys: NewLocalTicketKeys(time.Hour, time.Hour)}
	facts := ticketFacts{origin: t0, cert: true, notBefore: t0.Add(-time.Hour), notAft: t0.Add(time.Hour)}
	ticket, err := tk.seal(t0, "a.example", facts, ss)
	if err != nil || ticket == nil {
		t.Fatalf("seal: %v", err)
	}
	f, got := tk.open(t0, "a.example", ticket)
	if got == nil || !f.origin.Equal(t0) || !f.cert || !f.notBefore.Equal(facts.notBefore) || !f.notAft.Equal(facts.notAft) {
		t.Fatalf("open = %+v, %v", f, got)
	}
	if _, got := tk.open(t0, "b.example", ticket); got != nil {
		t.Fatal("ticket opened under another host")
	}
	if _, got := tk.open(t0, "", ticket); got != nil {
		t.Fatal("ticket opened without a server name")
	}
	for i := range ticket {
		bad := append([]byte(nil), ticket...)
		bad[i] ^= 0x40
		if _, got := tk.open(t0, "a.example", bad); got != nil {
			t.Fatalf("ticket with byte %d flipped opened", i)
		}
	}
	if _, got := tk.open(t0.Add(90*time.Minute), "a.example", ticket); got == nil {
		t.Fatal("ticket of the previous key refused within keep")
	}
	if _, got := tk.open(t0.Add(2*time.Hour), "a.example", ticket); got == nil {
		t.Fatal("ticket refused 30 minutes after its key retired")
	}
	tk.open(t0.Add(3*time.Hour), "a.example", nil) // the rotation of hour 3 drops the first key
	if _, got := tk.open(t0.Add(3*time.Hour), "a.example", ticket); got != nil {
		t.Fatal("ticket opened after its key was forgotten")
	}
}

// FuzzOpenTicket: whatever a client offers as a ticket, open returns
// nothing or a session, never panics.
func FuzzOpenTicket(f *testing.F) {
	t0 := time.Unix(1_700_000_000, 0)
	keys := NewLocalTicketKeys(time.Hour, time.Hour)
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{ticketVersion, 1, 2, 3, 4})
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, ticket []byte) {
		tk := &ticketer{keys: keys}
		if len(ticket) > ticketPrefixLen {
			// Aim at the key in force so the cipher runs.
			c, _ := tk.ciphers(t0)
			ticket[0] = ticketVersion
			copy(ticket[1:], c.ids[0][:])
		}
		if _, ss := tk.open(t0, "a.example", ticket); ss != nil {
			t.Fatal("a forged ticket opened")
		}
	})
}

// BenchmarkSessionTicket measures what session tickets add to a handshake
// on the server: the per-handshake tls.Config copy, sealing the ticket, and
// opening it at the next connection.
func BenchmarkSessionTicket(b *testing.B) {
	ts := startServer(b, func(c *Config) { c.Hosts[0].Routes = c.Hosts[0].Routes[len(c.Hosts[0].Routes)-1:] })
	ss := testSessionState(b)
	hello := &tls.ClientHelloInfo{ServerName: "localhost"}
	cs := tls.ConnectionState{Version: tls.VersionTLS13}
	ticket, _ := func() ([]byte, error) {
		c, _ := ts.configForClient(hello)
		return c.WrapSession(cs, ss)
	}()
	b.Run("config", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ts.configForClient(hello)
		}
	})
	c, _ := ts.configForClient(hello)
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.WrapSession(cs, ss)
		}
	})
	if f, got := ts.tickets.open(time.Now(), "localhost", ticket); got == nil || f.cert {
		b.Fatal("the benchmark ticket does not open")
	}
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.UnwrapSession(ticket, cs)
		}
	})
}
