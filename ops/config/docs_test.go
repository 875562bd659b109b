package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// examplesDir is where the documented example configurations live.
const examplesDir = "../../docs/examples"

func TestExamplesValidate(t *testing.T) {
	for _, name := range []string{"chimalli.yaml", "chimalli.toml"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(LoadOptions{File: filepath.Join(examplesDir, name), Env: []string{}})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(cfg.Gateway.Hosts) == 0 {
				t.Fatal("example has no hosts")
			}
			for _, h := range cfg.Gateway.Hosts {
				for _, r := range h.Routes {
					if _, err := r.Fingerprints(); err != nil {
						t.Errorf("host %s route %s: %v", h.Name, r.Prefix, err)
					}
					if r.Upstream != "" {
						if _, err := r.UpstreamTarget(); err != nil {
							t.Errorf("host %s route %s: %v", h.Name, r.Prefix, err)
						}
					}
				}
			}
		})
	}
}

func TestExampleYAMLContent(t *testing.T) {
	cfg, err := Load(LoadOptions{File: filepath.Join(examplesDir, "chimalli.yaml"), Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Gateway.Hosts) != 2 {
		t.Fatalf("hosts = %d, want 2", len(cfg.Gateway.Hosts))
	}
	routes := map[string]RouteConfig{}
	for _, h := range cfg.Gateway.Hosts {
		for _, r := range h.Routes {
			routes[h.Name+r.Prefix] = r
		}
	}
	if r := routes["example.org/admin/"]; len(r.AllowedFingerprints) == 0 || r.Docroot == "" {
		t.Errorf("/admin/ route = %+v, want fingerprints and a docroot", r)
	}
	if r := routes["example.org/app/"]; r.TOFU != TOFUClaim {
		t.Errorf("/app/ route tofu = %q, want claim", r.TOFU)
	}
	r := routes["molly.example.org/"]
	tgt, err := r.UpstreamTarget()
	if err != nil || tgt.Scheme != SchemeGemini || tgt.Address != "127.0.0.1:1966" || r.StripPrefix {
		t.Errorf("molly route = %+v (%+v, %v), want gemini://127.0.0.1:1966 without strip_prefix", r, tgt, err)
	}
}

// TestDocsListEveryKey fails when a key of the schema is missing from
// docs/configuration.md, so the docs cannot fall behind the code.
func TestDocsListEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	ko := koanf.New(".")
	if err := ko.Load(structs.Provider(DefaultConfig(), "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	keys := ko.Keys()
	for _, k := range configKeys() {
		if strings.Contains(k.Path, "[]") {
			keys = append(keys, k.Path)
		}
	}
	if len(keys) < 40 {
		t.Fatalf("only %d keys found; schema walk is broken", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("docs/configuration.md has no table row for `%s`", k)
		}
	}
}
