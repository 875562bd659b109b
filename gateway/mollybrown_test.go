package gateway

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/chimalli/chimalli/gateway/gemtest"
	"github.com/chimalli/chimalli/tofu"
)

func TestProxyMollyBrown(t *testing.T) {
	docroot := t.TempDir()
	writeFile(t, filepath.Join(docroot, "index.gmi"), []byte("# Molly home\n"))
	writeFile(t, filepath.Join(docroot, "docs", "index.gmi"), []byte("# Docs\n"))
	writeFile(t, filepath.Join(docroot, "docs", "page.gmi"), []byte("# A page served by molly-brown\n=> /docs/ back\n"))
	addr := gemtest.StartMollyBrown(t, gemtest.MollyBrownConfig{DocBase: docroot}).Addr

	pins := tofu.NewMemStore()
	h := newTestProxy(t, ProxyConfig{
		Upstream:    "gemini://" + addr,
		SNI:         "localhost",
		StripPrefix: "/molly/",
		Pins:        pins,
	})
	tests := []struct {
		path   string
		status int
		meta   string
		body   string
	}{
		{"/molly/docs/page.gmi", 20, "text/gemini", "# A page served by molly-brown\n=> /docs/ back\n"},
		{"/molly/", 20, "text/gemini", "# Molly home\n"},
		{"/molly/missing.gmi", 51, "", ""},
		{"/molly/docs", 31, "/molly/docs/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var w recorder
			if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, tc.path)); err != nil {
				t.Fatal(err)
			}
			if w.status != tc.status {
				t.Fatalf("status %d %q, want %d", w.status, w.meta, tc.status)
			}
			if tc.meta != "" && !bytes.HasPrefix([]byte(w.meta), []byte(tc.meta)) {
				t.Errorf("meta %q, want %q…", w.meta, tc.meta)
			}
			if w.body.String() != tc.body {
				t.Errorf("body %q, want %q", w.body.String(), tc.body)
			}
		})
	}
	port := addr[len("127.0.0.1:"):]
	if _, ok := pins.Lookup(tofu.PinKey{Kind: tofu.PinUpstream, Scope: "localhost:" + port}); !ok {
		t.Error("molly-brown's certificate was not pinned")
	}
}
