package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Session lifetimes. See SessionPolicy and docs/security.md.
const (
	// DefaultSessionLifetime bounds the resumption of a session without a
	// client certificate.
	DefaultSessionLifetime = time.Hour
	// DefaultCertSessionLifetime bounds the resumption of a session in
	// which the client presented a certificate.
	DefaultCertSessionLifetime = 10 * time.Minute
	// MaxSessionLifetime is the longest lifetime accepted: the lifetime
	// crypto/tls announces in TLS 1.3 tickets, and the most it resumes.
	MaxSessionLifetime = 7 * 24 * time.Hour
)

// SessionPolicy governs TLS session resumption. A resumed handshake proves
// that the client holds the secret of an earlier full handshake with this
// node's ticket keys, for the same server name; it proves nothing more, and
// no certificate can be asked for in it. So:
//
//   - a session is resumed only under the TLS server name it was issued
//     for, and at most Lifetime after the full handshake it descends from
//     (CertLifetime when the client presented a certificate in that
//     handshake): re-issued tickets keep that handshake's time;
//   - a resumed session keeps the certificate of its full handshake, and is
//     not resumed once that certificate is outside its validity dates;
//   - on a host with a route that needs a certificate, a session without
//     one gets no usable ticket and is never resumed, so the client's next
//     connection is a full handshake in which it can present one.
type SessionPolicy struct {
	// Disabled turns session tickets off: every connection is a full
	// handshake.
	Disabled bool
	// Lifetime bounds a session without a client certificate. Zero means
	// DefaultSessionLifetime.
	Lifetime time.Duration
	// CertLifetime bounds a session with a client certificate. Zero means
	// DefaultCertSessionLifetime.
	CertLifetime time.Duration
	// Keys supplies the ticket keys. Nil means a LocalTicketKeys that
	// rotates every max(Lifetime, CertLifetime) and keeps a retired key as
	// long.
	Keys TicketKeys
}

func (p SessionPolicy) withDefaults() (SessionPolicy, error) {
	if p.Lifetime == 0 {
		p.Lifetime = DefaultSessionLifetime
	}
	if p.CertLifetime == 0 {
		p.CertLifetime = DefaultCertSessionLifetime
	}
	for _, d := range []time.Duration{p.Lifetime, p.CertLifetime} {
		if d < 0 || d > MaxSessionLifetime {
			return p, fmt.Errorf("sessions: lifetime %v out of range (0, %v]", d, MaxSessionLifetime)
		}
	}
	if p.Keys == nil {
		longest := max(p.Lifetime, p.CertLifetime)
		p.Keys = NewLocalTicketKeys(longest, longest)
	}
	return p, nil
}

// A ticket is
//
//	version (1) | key id (4) | AES-256-GCM(random nonce, header | tls.SessionState)
//
// with the version, the key id and the TLS server name as additional data,
// so a ticket opens only under the name it was sealed for. The header is
// the time of the full handshake the session descends from, whether the
// client presented a certificate then, and that certificate's validity
// dates (crypto/tls does not expose a SessionState's certificates).
const (
	ticketVersion   = 1
	ticketPrefixLen = 1 + 4
	ticketHeaderLen = 8 + 1 + 8 + 8
)

// noTicket returns the ticket a session that must not be resumed gets:
// TLS 1.2 sends an empty one (RFC 5077 §3.3: the server declines), TLS 1.3
// cannot (RFC 8446 ticket labels are non-empty) and sends one byte that is
// no valid ticket version.
func noTicket(version uint16) []byte {
	if version == tls.VersionTLS13 {
		return []byte{0}
	}
	return []byte{}
}

// ticketCiphers are the ciphers derived from one list of TicketKeys.
type ticketCiphers struct {
	keys  []TicketKey
	ids   [][4]byte
	aeads []cipher.AEAD
}

// ticketer seals and opens session tickets with the keys of a TicketKeys.
// It is safe for concurrent use.
type ticketer struct {
	keys  TicketKeys
	cache atomic.Pointer[ticketCiphers] // derived from the last list seen
}

func (t *ticketer) ciphers(now time.Time) (*ticketCiphers, error) {
	keys := t.keys.TicketKeys(now)
	if c := t.cache.Load(); c != nil && slices.Equal(c.keys, keys) {
		return c, nil
	}
	c := &ticketCiphers{keys: keys, ids: make([][4]byte, len(keys)), aeads: make([]cipher.AEAD, len(keys))}
	for i := range keys {
		k, err := hkdf.Key(sha256.New, keys[i][:], nil, "chimalli session ticket v1", 32+4)
		if err != nil {
			return nil, fmt.Errorf("derive ticket key: %w", err)
		}
		block, err := aes.NewCipher(k[:32])
		if err != nil {
			return nil, fmt.Errorf("ticket cipher: %w", err)
		}
		if c.aeads[i], err = cipher.NewGCMWithRandomNonce(block); err != nil {
			return nil, fmt.Errorf("ticket cipher: %w", err)
		}
		copy(c.ids[i][:], k[32:])
	}
	t.cache.Store(c)
	return c, nil
}

// ticketFacts is what a ticket's header records.
type ticketFacts struct {
	origin            time.Time // the full handshake the session descends from
	cert              bool      // a client certificate was presented in it
	notBefore, notAft time.Time // the certificate's validity dates
}

// seal returns a ticket for ss, bound to host; nil when there is no key.
func (t *ticketer) seal(now time.Time, host string, f ticketFacts, ss *tls.SessionState) ([]byte, error) {
	c, err := t.ciphers(now)
	if err != nil || len(c.keys) == 0 {
		return nil, err
	}
	state, err := ss.Bytes()
	if err != nil {
		return nil, fmt.Errorf("seal ticket: %w", err)
	}
	plain := make([]byte, ticketHeaderLen, ticketHeaderLen+len(state))
	binary.BigEndian.PutUint64(plain[0:], uint64(f.origin.UnixNano()))
	if f.cert {
		plain[8] = 1
		binary.BigEndian.PutUint64(plain[9:], uint64(f.notBefore.UnixNano()))
		binary.BigEndian.PutUint64(plain[17:], uint64(f.notAft.UnixNano()))
	}
	plain = append(plain, state...)
	out := make([]byte, ticketPrefixLen, ticketPrefixLen+len(plain)+c.aeads[0].NonceSize()+c.aeads[0].Overhead())
	out[0] = ticketVersion
	copy(out[1:], c.ids[0][:])
	return c.aeads[0].Seal(out, nil, plain, ticketAAD(out[:ticketPrefixLen], host)), nil
}

// open returns the session in a ticket sealed for host by a key in force at
// now; nil for anything else.
func (t *ticketer) open(now time.Time, host string, ticket []byte) (ticketFacts, *tls.SessionState) {
	if len(ticket) < ticketPrefixLen || ticket[0] != ticketVersion {
		return ticketFacts{}, nil
	}
	c, err := t.ciphers(now)
	if err != nil {
		return ticketFacts{}, nil
	}
	aad := ticketAAD(ticket[:ticketPrefixLen], host)
	for i := range c.keys {
		if [4]byte(ticket[1:ticketPrefixLen]) != c.ids[i] {
			continue
		}
		plain, err := c.aeads[i].Open(nil, nil, ticket[ticketPrefixLen:], aad)
		if err != nil || len(plain) < ticketHeaderLen {
			continue
		}
		ss, err := tls.ParseSessionState(plain[ticketHeaderLen:])
		if err != nil {
			continue
		}
		f := ticketFacts{origin: time.Unix(0, int64(binary.BigEndian.Uint64(plain[0:])))}
		if plain[8] == 1 {
			f.cert = true
			f.notBefore = time.Unix(0, int64(binary.BigEndian.Uint64(plain[9:])))
			f.notAft = time.Unix(0, int64(binary.BigEndian.Uint64(plain[17:])))
		}
		return f, ss
	}
	return ticketFacts{}, nil
}

func ticketAAD(prefix []byte, host string) []byte {
	return append(append(make([]byte, 0, len(prefix)+len(host)), prefix...), host...)
}

// sessionBinding applies the SessionPolicy to one handshake: crypto/tls
// calls its unwrap for each ticket the client offers and its wrap for the
// ticket it sends.
type sessionBinding struct {
	policy   *SessionPolicy
	tickets  *ticketer
	now      func() time.Time
	host     string // normalised TLS server name, "" without one
	needCert bool   // the host has a route that needs a certificate

	// origin is the earliest full-handshake time of the sessions unwrap
	// accepted in this handshake: the one crypto/tls resumes, or an older
	// one, so a re-issued ticket never outlives its session.
	origin time.Time
}

func (b *sessionBinding) wrap(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	now := b.now()
	f := ticketFacts{origin: now}
	if cs.DidResume {
		if b.origin.IsZero() { // not one of our tickets: cannot happen
			return noTicket(cs.Version), nil
		}
		f.origin = b.origin
	}
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		f.cert, f.notBefore, f.notAft = true, leaf.NotBefore, leaf.NotAfter
	} else if b.needCert {
		return noTicket(cs.Version), nil
	}
	ticket, err := b.tickets.seal(now, b.host, f, ss)
	if err != nil {
		return nil, err
	}
	if ticket == nil {
		return noTicket(cs.Version), nil
	}
	return ticket, nil
}

func (b *sessionBinding) unwrap(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	now := b.now()
	f, ss := b.tickets.open(now, b.host, identity)
	if ss == nil || !b.resumable(f, now) {
		return nil, nil
	}
	if b.origin.IsZero() || f.origin.Before(b.origin) {
		b.origin = f.origin
	}
	return ss, nil
}

// resumable reports whether a session with facts f may be resumed at now.
func (b *sessionBinding) resumable(f ticketFacts, now time.Time) bool {
	age := now.Sub(f.origin)
	if !f.cert {
		return !b.needCert && age <= b.policy.Lifetime
	}
	return age <= b.policy.CertLifetime && !now.Before(f.notBefore) && !now.After(f.notAft)
}

// configForClient is the listener's GetConfigForClient when session tickets
// are on: each handshake gets a copy of the configuration whose ticket
// callbacks are bound to it and to the server name the client asked for.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	b := &sessionBinding{
		policy:   &s.sessions,
		tickets:  s.tickets,
		now:      s.now,
		host:     normalizedSNI(hello.ServerName),
		needCert: s.hostFor(hello.ServerName).needCert,
	}
	c := s.tlsCfg.Clone()
	c.GetConfigForClient = nil
	c.WrapSession = b.wrap
	c.UnwrapSession = b.unwrap
	return c, nil
}
