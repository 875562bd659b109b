package bench

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseURLList(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
		err  bool
	}{
		{"empty", "", nil, false},
		{"one", "gemini://localhost/\n", []string{"gemini://localhost/"}, false},
		{"no final newline", "gemini://a/\ngemini://b/", []string{"gemini://a/", "gemini://b/"}, false},
		{"comments and blanks", "# list\n\n  # indented comment\ngemini://a/\n\t\n", []string{"gemini://a/"}, false},
		{"trailing comment", "gemini://a/  # the first\ngemini://b/\t#x\n", []string{"gemini://a/", "gemini://b/"}, false},
		{"hash inside a URL", "gemini://a/#frag\n", []string{"gemini://a/#frag"}, false},
		{"CRLF", "gemini://a/\r\ngemini://b/\r\n", []string{"gemini://a/", "gemini://b/"}, false},
		{"BOM", "\ufeffgemini://a/\n", []string{"gemini://a/"}, false},
		{"surrounding space", "   gemini://a/   \n", []string{"gemini://a/"}, false},
		{"space inside", "gemini://a/ b\n", nil, true},
		{"line too long", strings.Repeat("x", maxListLine+1), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseURLList(strings.NewReader(tc.in))
			if tc.err {
				if !errors.Is(err, ErrBadURLList) {
					t.Fatalf("err = %v, want ErrBadURLList", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseURLListErrorNamesLine(t *testing.T) {
	_, err := ParseURLList(strings.NewReader("# c\ngemini://a/\ngemini://b/ c\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("err = %v, want it to name line 3", err)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		addr, host string
		isIP       bool
		err        bool
	}{
		{"default port", "gemini://localhost/", "localhost:1965", "localhost", false, false},
		{"explicit port", "gemini://127.0.0.1:1966/x?q", "127.0.0.1:1966", "127.0.0.1", true, false},
		{"IPv6", "gemini://[::1]:1965/", "[::1]:1965", "::1", true, false},
		{"no path", "gemini://example.org", "example.org:1965", "example.org", false, false},
		{"wrong scheme", "https://localhost/", "", "", false, true},
		{"no host", "gemini:///path", "", "", false, true},
		{"user info", "gemini://u@localhost/", "", "", false, true},
		{"port zero", "gemini://localhost:0/", "", "", false, true},
		{"port too big", "gemini://localhost:70000/", "", "", false, true},
		{"too long", "gemini://localhost/" + strings.Repeat("a", 1024), "", "", false, true},
		{"not a URL", "gemini://%zz/", "", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := parseTarget(tc.in)
			if tc.err {
				if !errors.Is(err, ErrBadURL) {
					t.Fatalf("err = %v, want ErrBadURL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tg.addr != tc.addr || tg.host != tc.host || tg.isIP != tc.isIP || string(tg.request) != tc.in+"\r\n" {
				t.Errorf("got addr %q host %q ip %v request %q", tg.addr, tg.host, tg.isIP, tg.request)
			}
		})
	}
}

func FuzzParseURLList(f *testing.F) {
	for _, s := range []string{
		"",
		"gemini://localhost/\n",
		"# comment\n\ngemini://a/ # trailing\r\ngemini://b/",
		"\ufeff gemini://a/\t\n",
		"a b\n",
		"#\n#\n \t \n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseURLList(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadURLList) {
				t.Fatalf("error %v does not wrap ErrBadURLList", err)
			}
			return
		}
		for _, u := range got {
			if u == "" || u[0] == '#' {
				t.Fatalf("entry %q is empty or a comment", u)
			}
			if strings.IndexFunc(u, unicode.IsSpace) >= 0 || strings.ContainsRune(u, '\n') {
				t.Fatalf("entry %q contains white space", u)
			}
			if r, _ := utf8.DecodeRuneInString(u); r == '\ufeff' {
				t.Fatalf("entry %q starts with a BOM", u)
			}
		}
		// Idempotence: the list written back one a line parses the same.
		again, err := ParseURLList(strings.NewReader(strings.Join(got, "\n")))
		if err != nil {
			t.Fatalf("reparse of %q: %v", got, err)
		}
		if !slices.Equal(got, again) {
			t.Fatalf("reparse changed %q into %q", got, again)
		}
	})
}
