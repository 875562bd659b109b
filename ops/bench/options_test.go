package bench

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		ok   bool
	}{
		{"defaults with a URL", func(*Options) {}, true},
		{"urls file only", func(o *Options) { o.URLs = nil; o.URLsFile = "list" }, true},
		{"count mode without duration", func(o *Options) { o.Duration = 0; o.Requests = 10 }, true},
		{"open loop", func(o *Options) { o.Rate = 100 }, true},
		{"x25519", func(o *Options) { o.KeyExchange = KEXX25519 }, true},
		{"empty key exchange", func(o *Options) { o.KeyExchange = "" }, true},
		{"unknown key exchange", func(o *Options) { o.KeyExchange = "rsa" }, false},
		{"cert and key", func(o *Options) { o.CertFile, o.KeyFile = "c", "k" }, true},
		{"no URL", func(o *Options) { o.URLs = nil }, false},
		{"bad URL", func(o *Options) { o.URLs = []string{"http://localhost/"} }, false},
		{"zero concurrency", func(o *Options) { o.Concurrency = 0 }, false},
		{"too much concurrency", func(o *Options) { o.Concurrency = MaxConcurrency + 1 }, false},
		{"negative count", func(o *Options) { o.Requests = -1 }, false},
		{"no duration, no count", func(o *Options) { o.Duration = 0 }, false},
		{"negative rate", func(o *Options) { o.Rate = -1 }, false},
		{"NaN rate", func(o *Options) { o.Rate = math.NaN() }, false},
		{"infinite rate", func(o *Options) { o.Rate = math.Inf(1) }, false},
		{"tiny rate", func(o *Options) { o.Rate = 1e-9 }, false},
		{"zero timeout", func(o *Options) { o.Timeout = 0 }, false},
		{"negative warm-up", func(o *Options) { o.Warmup = -time.Second }, false},
		{"negative progress", func(o *Options) { o.Progress = -time.Second }, false},
		{"cert without key", func(o *Options) { o.CertFile = "c" }, false},
		{"key without cert", func(o *Options) { o.KeyFile = "k" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.URLs = []string{"gemini://localhost/"}
			tc.mod(&o)
			err := o.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate = %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Validate = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

func TestBindFlagsDefaults(t *testing.T) {
	var o Options
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	BindFlags(fs, &o)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, DefaultOptions()) {
		t.Errorf("after BindFlags: %+v, want %+v", o, DefaultOptions())
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if len(strings.TrimSpace(f.Usage)) < 10 {
			t.Errorf("flag --%s has no real help text", f.Name)
		}
	})
}

func TestBindFlagsParse(t *testing.T) {
	o := DefaultOptions()
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	BindFlags(fs, &o)
	args := []string{"-c", "32", "-d", "3s", "-n", "100", "--rate", "250.5", "--resume",
		"--cert", "c.pem", "--key", "k.pem", "--timeout", "2s", "--kex", "x25519", "--allow-remote", "--json",
		"--progress", "500ms", "--quiet", "--warmup", "1s", "--urls-file", "list.txt", "gemini://localhost/"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	o.URLs = fs.Args()
	want := Options{
		URLs: []string{"gemini://localhost/"}, URLsFile: "list.txt", Concurrency: 32, Duration: 3 * time.Second,
		Requests: 100, Rate: 250.5, Resume: true, CertFile: "c.pem", KeyFile: "k.pem", Timeout: 2 * time.Second, KeyExchange: KEXX25519,
		AllowRemote: true, JSON: true, Progress: 500 * time.Millisecond, Quiet: true, Warmup: time.Second,
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("parsed %+v\nwant   %+v", o, want)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate of parsed flags: %v", err)
	}
}
