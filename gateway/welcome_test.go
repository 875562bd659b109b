package gateway

import (
	"context"
	"strings"
	"testing"
)

func TestWelcomeCapsule(t *testing.T) {
	h := WelcomeHandler()
	tests := []struct {
		path string
		want []string
	}{
		{"/", []string{"# Chimalli", "docs/configuration.md", "=> /about.gmi"}},
		{"/index.gmi", []string{"# Chimalli"}},
		{"/about.gmi", []string{"Accept", "Handshake", "Parse", "Layers", "Handler"}},
	}
	for _, tc := range tests {
		var w recorder
		if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, tc.path)); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if w.status != 20 || w.meta != "text/gemini" {
			t.Errorf("%s: header %d %q", tc.path, w.status, w.meta)
		}
		body := w.body.String()
		for _, s := range tc.want {
			if !strings.Contains(body, s) {
				t.Errorf("%s: body lacks %q", tc.path, s)
			}
		}
	}
	// The layers are listed in the order they run.
	var w recorder
	if err := h.ServeGemini(context.Background(), &w, geminiRequest(t, "/about.gmi")); err != nil {
		t.Fatal(err)
	}
	last := -1
	for _, s := range []string{"## 1. Accept", "## 2. Handshake", "## 3. Parse", "## 4. Layers", "## 5. Handler"} {
		i := strings.Index(w.body.String(), s)
		if i <= last {
			t.Errorf("%q missing or out of order", s)
		}
		last = i
	}
	var nf recorder
	if got := reasonOf(h.ServeGemini(context.Background(), &nf, geminiRequest(t, "/missing.gmi"))); got != ReasonNotFound {
		t.Errorf("missing page: reason %v", got)
	}
}
