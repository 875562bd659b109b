package gateway

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// auditRec is what a test keeps of an Outcome: a copy, since a sink may
// not keep the Outcome itself.
type auditRec struct {
	Outcome
	path   string
	scheme Scheme
	cert   bool
}

type recordingSink struct {
	mu   sync.Mutex
	recs []auditRec
}

func (s *recordingSink) Audit(o *Outcome) {
	r := auditRec{Outcome: *o}
	if o.Request != nil {
		r.path, r.scheme, r.cert = o.Request.Path, o.Request.Scheme, o.Request.ClientCert != nil
	}
	r.Request = nil
	s.mu.Lock()
	s.recs = append(s.recs, r)
	s.mu.Unlock()
}

func (s *recordingSink) all() []auditRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]auditRec(nil), s.recs...)
}

func TestAuditOutcomes(t *testing.T) {
	sink := &recordingSink{}
	deny := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	before := time.Now()
	ts := startServer(t, func(c *Config) {
		c.Audit = sink
		c.Layers.Access = NewAccessList(nil, deny, true)
	})

	if _, err := (client{sni: "localhost", local: "127.0.0.2"}).dial(ts.addr); err == nil {
		t.Fatal("denied address completed a handshake")
	}
	served := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/hello.gmi?secret-query\r\n")
	if served.status != 20 {
		t.Fatalf("served: %d", served.status)
	}
	if r := mustDo(t, client{sni: "localhost"}, ts.addr, "gemini://localhost/%zz\r\n"); r.status != 59 {
		t.Fatalf("bad request: %d", r.status)
	}
	admin := ts.admin
	if r := mustDo(t, client{sni: "localhost", cert: &admin}, ts.addr, "gemini://localhost/cert/x\r\n"); r.status != 20 {
		t.Fatalf("with cert: %d", r.status)
	}
	waitFor(t, "four audit records", func() bool { return len(sink.all()) == 4 })

	byStage := map[Stage][]auditRec{}
	for _, r := range sink.all() {
		byStage[r.Stage] = append(byStage[r.Stage], r)
		if r.Start.Before(before) || r.Duration < 0 {
			t.Errorf("record times: start %v, duration %v", r.Start, r.Duration)
		}
	}
	acc := byStage[StageAccept]
	if len(acc) != 1 || acc[0].Reason != ReasonAccessDenied || acc[0].Status != 0 || acc[0].Addr != netip.MustParseAddr("127.0.0.2") || acc[0].Bytes != 0 {
		t.Fatalf("accept-stage records = %+v, want one access_denied for 127.0.0.2", acc)
	}
	reqs := map[int]auditRec{}
	for _, r := range byStage[StageRequest] {
		if r.Status == 20 && r.cert {
			reqs[-20] = r
			continue
		}
		reqs[r.Status] = r
	}
	ok := reqs[20]
	// "20 text/gemini\r\n" + "path=/hello.gmi\n"
	if ok.Reason != ReasonNone || ok.path != "/hello.gmi" || ok.scheme != SchemeGemini || ok.Bytes != int64(len("20 text/gemini\r\npath=/hello.gmi\n")) || ok.cert {
		t.Errorf("served record = %+v (path %q)", ok, ok.path)
	}
	bad := reqs[59]
	if bad.Reason != ReasonBadRequest || bad.scheme != 0 || bad.path != "" || bad.Bytes == 0 {
		t.Errorf("bad request record = %+v (scheme %v, path %q)", bad, bad.scheme, bad.path)
	}
	if c := reqs[-20]; !c.cert || c.path != "/cert/x" {
		t.Errorf("record with a client certificate = %+v", c)
	}
}

// A refusal at accept audits from the accept loop, before any goroutine
// exists for the connection; the sink sees the address so it can hash it.
func TestAuditBanRefusals(t *testing.T) {
	sink := &recordingSink{}
	ts := startServer(t, func(c *Config) {
		c.Audit = sink
		c.Layers.Bans = banSet{netip.MustParseAddr("127.0.0.3"): true}
	})
	for range 3 {
		(client{sni: "localhost", local: "127.0.0.3"}).dial(ts.addr)
	}
	waitFor(t, "three refusals audited", func() bool { return len(sink.all()) == 3 })
	for _, r := range sink.all() {
		if r.Stage != StageAccept || r.Reason != ReasonBanned {
			t.Fatalf("record = %+v, want a banned refusal", r)
		}
	}
}
