package bench

import "testing"

func TestErrorKindNames(t *testing.T) {
	want := []string{"dial", "tls", "write", "read_header", "bad_header", "timeout", "read_body", "cert_changed"}
	for k := range numKinds {
		if k.String() != want[k] {
			t.Errorf("kind %d = %q, want %q", k, k, want[k])
		}
	}
	if numKinds.String() != "unknown" {
		t.Errorf("out-of-range kind = %q", numKinds.String())
	}
}
