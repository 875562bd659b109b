package tofu

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    Outcome
		want string
	}{
		{FirstUse, "first_use"},
		{Match, "match"},
		{Mismatch, "mismatch"},
		{0, "outcome(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.o.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	key := newKey(t)
	orig := IdentityOf(selfSigned(t, key, "alice", 1))
	renewed := IdentityOf(selfSigned(t, key, "alice", 2))
	other := IdentityOf(selfSigned(t, newKey(t), "alice", 1))
	pinned := Pin{Key: PinKey{PinClient, "example.org/app/"}, Identity: orig}

	tests := []struct {
		name string
		id   Identity
		want Outcome
	}{
		{"same certificate", orig, Match},
		{"renewed with same key", renewed, Match},
		{"other key", other, Mismatch},
		{"same cert other key", Identity{Cert: orig.Cert, SPKI: other.SPKI}, Match},
		{"no certificate", Identity{}, Mismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(pinned, tt.id); got != tt.want {
				t.Fatalf("Compare = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	alice := IdentityOf(selfSigned(t, k, "alice", 1))
	aliceRenewed := IdentityOf(selfSigned(t, k, "alice", 2))
	mallory := IdentityOf(selfSigned(t, newKey(t), "alice", 1))
	key := PinKey{PinClient, "example.org/app/"}
	now := testTime
	expiry := testTime.AddDate(0, 0, 30)
	local := time.FixedZone("local", -5*3600)

	// Each step runs on the same store, in order.
	steps := []struct {
		name string
		id   Identity
		want Outcome
	}{
		{"first use", alice, FirstUse},
		{"same certificate again", alice, Match},
		{"renewed certificate, same key", aliceRenewed, Match},
		{"other key", mallory, Mismatch},
		{"original still matches", alice, Match},
	}
	s := NewMemStore()
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			at := now.Add(time.Duration(i) * time.Minute).In(local)
			got, pin, err := Check(ctx, s, key, st.id, at, expiry)
			if err != nil {
				t.Fatal(err)
			}
			if got != st.want {
				t.Fatalf("Check = %v, want %v", got, st.want)
			}
			want := Pin{Key: key, Identity: alice, Created: now, NotAfter: expiry}
			if !pin.Equal(want) {
				t.Fatalf("pin = %+v, want %+v", pin, want)
			}
			if pin.Created.Location() != time.UTC {
				t.Fatalf("Created is in %v, want UTC", pin.Created.Location())
			}
		})
	}
}

func TestCheckInvalid(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		key  PinKey
		id   Identity
	}{
		{"zero identity", PinKey{PinClient, "a/"}, Identity{}},
		{"zero kind", PinKey{0, "a/"}, testIdentity(1)},
		{"empty scope", PinKey{PinUpstream, ""}, testIdentity(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemStore()
			o, _, err := Check(ctx, s, tt.key, tt.id, testTime, testTime)
			if !errors.Is(err, ErrInvalidPin) || o != 0 {
				t.Fatalf("Check = %v, %v; want zero outcome and ErrInvalidPin", o, err)
			}
			if s.Len() != 0 {
				t.Fatal("an invalid check left a pin")
			}
		})
	}
}

// raceLostStore misses on Lookup and answers Claim with a pin someone else
// won meanwhile, as a store does for a caller that lost a race.
type raceLostStore struct{ winner Pin }

func (s raceLostStore) Lookup(PinKey) (Pin, bool) { return Pin{}, false }
func (s raceLostStore) Claim(context.Context, Pin) (Pin, error) {
	return s.winner, nil
}

// failingStore misses on Lookup and fails every Claim.
type failingStore struct{ err error }

func (s failingStore) Lookup(PinKey) (Pin, bool)               { return Pin{}, false }
func (s failingStore) Claim(context.Context, Pin) (Pin, error) { return Pin{}, s.err }

func TestCheckLostRace(t *testing.T) {
	key := PinKey{PinUpstream, "backend:1965"}
	winner := testPin(key, 1)
	winnerSameKey := winner
	winnerSameKey.Identity.Cert = testIdentity(9).Cert
	tests := []struct {
		name   string
		winner Pin
		id     Identity
		want   Outcome
	}{
		{"winner has another identity", winner, testIdentity(2), Mismatch},
		{"winner has the same identity, other time", winner, winner.Identity, Match},
		{"winner has the same key", winnerSameKey, winner.Identity, Match},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, p, err := Check(context.Background(), raceLostStore{tt.winner}, key, tt.id, testTime.Add(time.Hour), testTime)
			if err != nil {
				t.Fatal(err)
			}
			if o != tt.want || !p.Equal(tt.winner) {
				t.Fatalf("Check = %v, %+v; want %v, the winner", o, p, tt.want)
			}
		})
	}
}

func TestCheckClaimError(t *testing.T) {
	boom := errors.New("boom")
	o, _, err := Check(context.Background(), failingStore{boom}, PinKey{PinClient, "a/"}, testIdentity(1), testTime, testTime)
	if !errors.Is(err, boom) || o != 0 {
		t.Fatalf("Check = %v, %v; want zero outcome and the store's error", o, err)
	}
}

// testConcurrentClaims has n goroutines claim one key with n identities at
// once, through Claim or Check, and checks that exactly one wins and that
// every caller sees that winner. It returns the winner.
func testConcurrentClaims(t *testing.T, s Store, key PinKey, n int) Pin {
	t.Helper()
	type result struct {
		mine, got Pin
		claimWon  bool
		outcome   Outcome
		err       error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			mine := testPin(key, i)
			<-start
			if i%2 == 0 {
				got, err := s.Claim(context.Background(), mine)
				results[i] = result{mine: mine, got: got, claimWon: got.Equal(mine), err: err}
				return
			}
			o, got, err := Check(context.Background(), s, key, mine.Identity, mine.Created, mine.NotAfter)
			results[i] = result{mine: mine, got: got, claimWon: o == FirstUse, outcome: o, err: err}
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	var winner Pin
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.claimWon {
			winners++
			winner = r.mine
		}
	}
	if winners != 1 {
		t.Fatalf("%d winners, want exactly 1", winners)
	}
	for i, r := range results {
		if !r.got.Equal(winner) {
			t.Fatalf("caller %d sees %v, winner is identity %v", i, r.got.Identity.CertFingerprint(), winner.Identity.CertFingerprint())
		}
		if i%2 == 1 && !r.claimWon && r.outcome != Mismatch {
			t.Fatalf("loser %d got %v, want mismatch", i, r.outcome)
		}
	}
	if got, ok := s.Lookup(key); !ok || !got.Equal(winner) {
		t.Fatalf("Lookup after the race = %v, %v; want the winner", got, ok)
	}
	return winner
}

func TestConcurrentClaimsMemStore(t *testing.T) {
	s := NewMemStore()
	for i := range 3 {
		testConcurrentClaims(t, s, PinKey{PinClient, "example.org/app" + strconv.Itoa(i) + "/"}, 50)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
}

func BenchmarkCompare(b *testing.B) {
	pinned := testPin(PinKey{PinClient, "example.org/app/"}, 1)
	ids := []Identity{pinned.Identity, {Cert: testIdentity(2).Cert, SPKI: pinned.Identity.SPKI}, testIdentity(3)}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		for _, id := range ids {
			if Compare(pinned, id) == Match {
				n++
			}
		}
	}
	if n == 0 {
		b.Fatal("no match")
	}
}

func BenchmarkCheckHit(b *testing.B) {
	s := NewMemStore()
	key := PinKey{PinClient, "example.org/app/"}
	p := testPin(key, 1)
	if _, err := s.Claim(context.Background(), p); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		o, _, err := Check(ctx, s, key, p.Identity, testTime, testTime)
		if err != nil || o != Match {
			b.Fatal(o, err)
		}
	}
}
