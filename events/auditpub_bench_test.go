package events

import (
	"context"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// inProcessJetStream starts a JetStream server without a port and returns
// an in-process connection to it, as a node publishes on its own.
func inProcessJetStream(b *testing.B) *nats.Conn {
	b.Helper()
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: b.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats server not ready")
	}
	b.Cleanup(s.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// benchRecord is a typical answered request.
func benchRecord() AuditRecord {
	r := requestRecord()
	r.ID, r.Node = "", ""
	return r
}

// BenchmarkAuditPublisherRecord is the request path: Record with its ID
// drawn (the one allocation) and with an ID the audit file gave it, into a
// buffer that a goroutine empties (nothing is dropped, nothing is sent).
func BenchmarkAuditPublisherRecord(b *testing.B) {
	for _, tc := range []struct {
		name string
		id   string
	}{{"new id", ""}, {"id from the file", "edge-1/0badcafe/2"}} {
		b.Run(tc.name, func(b *testing.B) {
			p, stop := drainedPublisher(b)
			r := benchRecord()
			b.ReportAllocs()
			for b.Loop() {
				r.ID = tc.id
				p.Record(&r)
			}
			b.StopTimer()
			stop()
		})
	}
}

// drainedPublisher opens a publisher whose queue another goroutine empties
// (nothing is sent), for benchmarks of Record; stop closes it and reports
// the share of records dropped.
func drainedPublisher(b *testing.B) (p *AuditPublisher, stop func()) {
	gate := make(chan struct{})
	p, err := openAuditPublisher(AuditPublisherConfig{Conn: inProcessJetStream(b), Subject: auditSubject,
		Node: "edge-1", SpoolDir: filepath.Join(b.TempDir(), "spool"), Buffer: 1 << 16}, gate)
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for it := range p.queue {
			p.putItem(it)
		}
	}()
	return p, func() {
		p.mu.Lock()
		p.quit = true
		close(p.queue)
		p.mu.Unlock()
		<-drained
		p.queue = make(chan *pubItem) // emptied by the goroutine: the sender finds nothing
		close(p.queue)
		close(gate)
		<-p.done
		// On two cores the emptying goroutine falls behind at times;
		// a dropped record costs less than a queued one.
		b.ReportMetric(float64(p.Stats().Dropped)/float64(b.N), "drops/op")
	}
}

// BenchmarkAuditToFileAndNATS is the request path with both an audit file
// and the event plane: the record checked and encoded for each ("each"),
// or once with RecordToBoth ("once").
func BenchmarkAuditToFileAndNATS(b *testing.B) {
	for _, tc := range []struct {
		name string
		rec  func(l *AuditLog, p *AuditPublisher, r *AuditRecord)
	}{
		{"each", func(l *AuditLog, p *AuditPublisher, r *AuditRecord) { l.Record(r); p.Record(r) }},
		{"once", func(l *AuditLog, p *AuditPublisher, r *AuditRecord) { RecordToBoth(l, p, r) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, stop := drainedPublisher(b)
			l := NewAuditLog(io.Discard, AuditLogConfig{Node: "edge-1", Buffer: 1 << 16})
			r := benchRecord()
			b.ReportAllocs()
			for b.Loop() {
				tc.rec(l, p, &r)
			}
			b.StopTimer()
			stop()
			if err := l.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkAuditPublisherThroughput is records into JetStream per second,
// end to end, from Record until JetStream acknowledged every one. The
// producer sleeps while the buffer is an eighth full, so that it measures
// what the sender publishes (a faster producer would fill the spool).
func BenchmarkAuditPublisherThroughput(b *testing.B) {
	nc := inProcessJetStream(b)
	createAuditStream(b, nc)
	p, err := OpenAuditPublisher(AuditPublisherConfig{Conn: nc, Subject: auditSubject, Node: "edge-1",
		SpoolDir: filepath.Join(b.TempDir(), "spool")})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		for len(p.queue) > cap(p.queue)/8 {
			time.Sleep(100 * time.Microsecond)
		}
		r := benchRecord()
		if !p.Record(&r) {
			b.Fatal("dropped")
		}
		n++
	}
	if err := p.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	st := p.Stats()
	if st.Published != uint64(n) {
		b.Fatalf("stats %+v, want %d published", st, n)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "records/s")
	b.ReportMetric(float64(st.Spooled)/float64(n), "spooled/op")
}

// BenchmarkAuditSpoolWrite is appending records to the spool (through its
// buffer, flushed to the OS at the end).
func BenchmarkAuditSpoolWrite(b *testing.B) {
	s, err := openSpool(filepath.Join(b.TempDir(), "spool"), 1<<40, defaultSpoolSegment)
	if err != nil {
		b.Fatal(err)
	}
	r := requestRecord()
	body := r.AppendJSON(nil)
	b.SetBytes(frameSize(r.ID, body))
	for b.Loop() {
		if ok, err := s.append(r.ID, body); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	if err := s.close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAuditSpoolReplay is replaying a spool of 200,000 records into
// JetStream: from opening the publisher until every record is
// acknowledged (records/s is the figure; run with -benchtime 1x).
func BenchmarkAuditSpoolReplay(b *testing.B) {
	const n = 200_000
	r := requestRecord()
	body := r.AppendJSON(nil)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		nc := inProcessJetStream(b)
		createAuditStream(b, nc)
		dir := filepath.Join(b.TempDir(), "spool")
		s, err := openSpool(dir, 1<<40, defaultSpoolSegment)
		if err != nil {
			b.Fatal(err)
		}
		for j := range n { // unique ids, so that nothing is de-duplicated
			if ok, err := s.append("edge-1/0badcafe/"+itoa(i*n+j+1), body); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
		if err := s.close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		p, err := OpenAuditPublisher(AuditPublisherConfig{Conn: nc, Subject: auditSubject, Node: "edge-1", SpoolDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		for p.Stats().Replayed < n {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		if err := p.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// BenchmarkAuditPublisherBufferMemory measures the heap a full buffer
// holds (DefaultAuditBuffer typical records): bytes per record.
func BenchmarkAuditPublisherBufferMemory(b *testing.B) {
	gate := make(chan struct{})
	p, err := openAuditPublisher(AuditPublisherConfig{Conn: inProcessJetStream(b), Subject: auditSubject,
		Node: "edge-1", SpoolDir: filepath.Join(b.TempDir(), "spool")}, gate)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		close(gate)
		p.Close(context.Background())
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range DefaultAuditBuffer {
		r := benchRecord()
		if !p.Record(&r) {
			b.Fatal("dropped")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	for b.Loop() {
	}
	b.ReportMetric(float64(held)/DefaultAuditBuffer, "B/record")
	b.ReportMetric(float64(held)/(1<<20), "MiB/buffer")
}
