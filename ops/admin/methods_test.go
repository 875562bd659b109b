package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// methods dispatches by method, GET's handler serving HEAD too, and
// answers any other method with a JSON 405 whose Allow header names the
// methods served, in a fixed order.
func TestMethodsDispatchAndAllow(t *testing.T) {
	answer := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Handler", name) }
	}
	all := methods{get: answer("get"), post: answer("post"), delete: answer("delete")}
	tests := []struct {
		name        string
		m           methods
		method      string
		wantHandler string // "" for a 405
		wantAllow   string
	}{
		{"GET", all, http.MethodGet, "get", ""},
		{"HEAD is GET's", all, http.MethodHead, "get", ""},
		{"POST", all, http.MethodPost, "post", ""},
		{"DELETE", all, http.MethodDelete, "delete", ""},
		{"PUT refused", all, http.MethodPut, "", "GET, HEAD, POST, DELETE"},
		{"get only", methods{get: answer("get")}, http.MethodPost, "", "GET, HEAD"},
		{"post only", methods{post: answer("post")}, http.MethodGet, "", "POST"},
		{"HEAD without get", methods{post: answer("post")}, http.MethodHead, "", "POST"},
		{"get and delete", methods{get: answer("get"), delete: answer("delete")}, http.MethodPost, "", "GET, HEAD, DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.m.ServeHTTP(rec, httptest.NewRequest(tt.method, "/x", nil))
			if tt.wantHandler != "" {
				if got := rec.Header().Get("X-Handler"); got != tt.wantHandler || rec.Code != http.StatusOK {
					t.Fatalf("%s served by %q (%d), want %q", tt.method, got, rec.Code, tt.wantHandler)
				}
				return
			}
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("X-Handler") != "" {
				t.Fatalf("%s = %d, want 405 without a handler", tt.method, rec.Code)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Fatalf("Allow = %q, want %q", got, tt.wantAllow)
			}
			var sb statusBody
			if err := json.Unmarshal(rec.Body.Bytes(), &sb); err != nil || sb.Status != "method_not_allowed" || sb.Error != tt.method+" is not allowed" {
				t.Fatalf("body %q (%v)", rec.Body, err)
			}
		})
	}
}
