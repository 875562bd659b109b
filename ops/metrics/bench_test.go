package metrics

import (
	"io"
	"net/http/httptest"
	"testing"
)

// BenchmarkScrape measures one /metrics request in process: gathering the
// node's, the Go runtime's and the process's metrics and encoding them.
func BenchmarkScrape(b *testing.B) {
	src := fakeSources(leaderRaft())
	h := Handler(NewRegistry(src), func() error { return Ready(src.Raft()) }, nil)
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		io.Discard.Write(w.Body.Bytes())
	}
}
