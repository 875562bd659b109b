package events

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAuditRecord is the per-connection cost of an audit record on
// the request path: hash the client address, fill the record, encode it.
func BenchmarkAuditRecord(b *testing.B) {
	h, err := NewRandomIPHasher()
	if err != nil {
		b.Fatal(err)
	}
	addr := netip.MustParseAddr("2001:db8::7")
	accepted := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		r := AuditRecord{
			ID:       "edge-1/0badcafe/2",
			Time:     accepted,
			Node:     "edge-1",
			Client:   h.HashAddr(addr),
			Stage:    StageRequest,
			Scheme:   "gemini",
			Host:     "example.org",
			Path:     "/app/%E2%9C%93/",
			Status:   20,
			Reason:   "allowed",
			Cert:     testCert,
			Bytes:    5120,
			Duration: 12345 * time.Microsecond,
		}
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkAuditAppendJSON is the encoding alone.
func BenchmarkAuditAppendJSON(b *testing.B) {
	r := requestRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkAuditLogRecord is Record from many goroutines into a log that
// writes to io.Discard. Records the writer cannot keep up with are
// dropped; drops/op says how many.
func BenchmarkAuditLogRecord(b *testing.B) {
	l := NewAuditLog(io.Discard, AuditLogConfig{Node: "edge-1"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := requestRecord()
		for pb.Next() {
			r.Node = ""
			l.Record(&r)
		}
	})
	b.StopTimer()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	s := l.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "drops/op")
}
