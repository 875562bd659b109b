package gateway

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTitanParams(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want TitanParams
	}{
		{"size only", "size=10", TitanParams{Size: 10, MIME: DefaultTitanMIME}},
		{"all", "size=10;mime=text/plain;token=abc", TitanParams{Size: 10, MIME: "text/plain", Token: "abc"}},
		{"any order", "token=abc;mime=image/png;size=3", TitanParams{Size: 3, MIME: "image/png", Token: "abc"}},
		{"keys case-insensitive", "SIZE=1;Mime=text/plain;ToKeN=t", TitanParams{Size: 1, MIME: "text/plain", Token: "t"}},
		{"zero size", "size=0", TitanParams{Size: 0, MIME: DefaultTitanMIME}},
		{"leading zeros", "size=007", TitanParams{Size: 7, MIME: DefaultTitanMIME}},
		{"max size", "size=9007199254740992", TitanParams{Size: MaxTitanSize, MIME: DefaultTitanMIME}},
		{"leading semicolon", ";size=1", TitanParams{Size: 1, MIME: DefaultTitanMIME}},
		{"empty params", ";;size=1;;mime=text/plain;;", TitanParams{Size: 1, MIME: "text/plain"}},
		{"unknown keys ignored", "foo=bar;size=1;x;x;y=", TitanParams{Size: 1, MIME: DefaultTitanMIME}},
		{"mime decoded", "size=1;mime=text%2Fplain", TitanParams{Size: 1, MIME: "text/plain"}},
		{"mime with parameter", "size=1;mime=text/plain%3B%20charset=utf-8", TitanParams{Size: 1, MIME: "text/plain; charset=utf-8"}},
		{"mime token chars", "size=1;mime=application/vnd.x+json", TitanParams{Size: 1, MIME: "application/vnd.x+json"}},
		{"token decoded", "size=1;token=a%20b%3Bc%3D", TitanParams{Size: 1, MIME: DefaultTitanMIME, Token: "a b;c="}},
		{"token with equals", "size=1;token=a=b", TitanParams{Size: 1, MIME: DefaultTitanMIME, Token: "a=b"}},
		{"empty token", "size=1;token=", TitanParams{Size: 1, MIME: DefaultTitanMIME}},
		{"non-ASCII token", "size=1;token=%C3%A9", TitanParams{Size: 1, MIME: DefaultTitanMIME, Token: "é"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTitanParams(tt.in)
			if err != nil {
				t.Fatalf("ParseTitanParams(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseTitanParams(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTitanParamsErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"only separators", ";;"},
		{"no size", "mime=text/plain;token=x"},
		{"size without value", "size"},
		{"empty size", "size="},
		{"negative size", "size=-1"},
		{"plus size", "size=+1"},
		{"hex size", "size=0x10"},
		{"size with space escape", "size=%201"},
		{"encoded size", "size=%31"},
		{"fractional size", "size=1.5"},
		{"size above 2^53", "size=9007199254740993"},
		{"huge size", "size=99999999999999999999999999"},
		{"duplicate size", "size=1;size=1"},
		{"duplicate size other case", "size=1;SIZE=2"},
		{"duplicate mime", "size=1;mime=text/plain;mime=text/plain"},
		{"duplicate token", "size=1;token=a;token=b"},
		{"empty mime", "size=1;mime="},
		{"mime without subtype", "size=1;mime=text"},
		{"mime empty subtype", "size=1;mime=text/"},
		{"mime two slashes", "size=1;mime=text/plain/x"},
		{"mime with space", "size=1;mime=text%20/plain"},
		{"mime with control", "size=1;mime=text/plain%0A"},
		{"mime bad escape", "size=1;mime=text/%zz"},
		{"mime bad parameter", "size=1;mime=text/plain%3Bcharset"},
		{"token bad escape", "size=1;token=%zz"},
		{"token truncated escape", "size=1;token=ab%2"},
		{"token with control", "size=1;token=a%00b"},
		{"token without value", "size=1;token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTitanParams(tt.in)
			if err == nil {
				t.Fatalf("ParseTitanParams(%q) = %+v, want error", tt.in, got)
			}
			assertReason(t, err, ReasonBadRequest)
			assertClientMessage(t, err)
			if got != (TitanParams{}) {
				t.Fatalf("ParseTitanParams(%q) returned %+v with its error", tt.in, got)
			}
		})
	}
}

func TestParseTitanParamsNeverLeaksToken(t *testing.T) {
	for _, in := range []string{
		"size=1;token=HUNTER2%zz",
		"size=1;token=HUNTER2%00",
		"size=1;token=HUNTER2;token=HUNTER2",
		"token=HUNTER2",
		"token=HUNTER2;size=x",
		"token=HUNTER2;size=1;mime=HUNTER2",
	} {
		_, err := ParseTitanParams(in)
		if err == nil {
			t.Fatalf("ParseTitanParams(%q) succeeded", in)
		}
		if strings.Contains(err.Error(), "HUNTER2") {
			t.Fatalf("ParseTitanParams(%q) error %q contains the token", in, err)
		}
	}
}

func FuzzTitanParams(f *testing.F) {
	for _, s := range []string{"size=10;mime=text/plain;token=abc", "size=0", ";;size=1;;", "size=1;size=2", "SIZE=9007199254740992", "size=1;mime=text/plain%3B%20charset=utf-8"} {
		f.Add(s)
	}
	for _, v := range loadTraversalCorpus(f) {
		f.Add("size=1;token=" + v.raw)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTitanParams(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonBadRequest {
				t.Fatalf("ParseTitanParams(%q): error %v has the wrong type or reason", s, err)
			}
			assertClientMessage(t, err)
			return
		}
		if tp.Size < 0 || tp.Size > MaxTitanSize {
			t.Fatalf("ParseTitanParams(%q): size %d out of range", s, tp.Size)
		}
		if !validTitanMIME(tp.MIME) {
			t.Fatalf("ParseTitanParams(%q): MIME %q is not a media type", s, tp.MIME)
		}
		if hasCtlByte(tp.Token) {
			t.Fatalf("ParseTitanParams(%q): token holds a control byte", s)
		}
		// Adding an unknown parameter and empty ones changes nothing.
		tp2, err := ParseTitanParams(";x-unknown=1;;" + s + ";")
		if err != nil || tp2 != tp {
			t.Fatalf("ParseTitanParams with extra params = %+v, %v; want %+v", tp2, err, tp)
		}
	})
}

func BenchmarkParseTitanParams(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTitanParams("size=1234;mime=text/gemini;token=s3cr3t"); err != nil {
			b.Fatal(err)
		}
	}
}
