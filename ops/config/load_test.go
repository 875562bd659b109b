package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/spf13/pflag"
)

// writeConfig writes content to name in a fresh temporary directory and
// returns its path.
func writeConfig(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustLoad loads opts and fails the test on error.
func mustLoad(t *testing.T, opts LoadOptions) *Config {
	t.Helper()
	cfg, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// boundFlags returns a flag set with BindFlags applied, parsed from args.
func boundFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	fs.String("config", "", "foreign flag, not a key")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestLoadDefaults(t *testing.T) {
	cfg := mustLoad(t, LoadOptions{Env: []string{}})
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load with no sources:\n got %+v\nwant %+v", cfg, want)
	}
}

const precedenceFile = `
gateway:
  listen: "127.0.0.1:2001"
  limits: {max_conns: 500}
node: {data_dir: /from/file}
log: {level: warn, format: text}
`

func TestLoadPrecedence(t *testing.T) {
	file := writeConfig(t, "c.yaml", precedenceFile)
	type want struct{ listen, dataDir, level, format string }
	tests := []struct {
		name  string
		file  string
		env   []string
		flags []string
		want  want
	}{
		{"defaults only", "", nil, nil, want{DefaultListen, DefaultDataDir, "error", "json"}},
		{"file over defaults", file, nil, nil, want{"127.0.0.1:2001", "/from/file", "warn", "text"}},
		{"env over file", file, []string{"CHIMALLI_NODE__DATA_DIR=/from/env", "CHIMALLI_LOG__LEVEL=info"}, nil,
			want{"127.0.0.1:2001", "/from/env", "info", "text"}},
		{"flags over env", file, []string{"CHIMALLI_NODE__DATA_DIR=/from/env", "CHIMALLI_LOG__LEVEL=info"},
			[]string{"--log-level=debug"}, want{"127.0.0.1:2001", "/from/env", "debug", "text"}},
		{"every flag", file, []string{"CHIMALLI_NODE__DATA_DIR=/from/env"},
			[]string{"--listen=[::1]:3000", "--data-dir=/from/flag", "--log-level=debug", "--log-format=json"},
			want{"[::1]:3000", "/from/flag", "debug", "json"}},
		{"unset flags do not override", file, []string{"CHIMALLI_LOG__LEVEL=info"}, []string{"--config=x.yaml"},
			want{"127.0.0.1:2001", "/from/file", "info", "text"}},
		{"flags over defaults", "", nil, []string{"--listen=:1966"}, want{":1966", DefaultDataDir, "error", "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = []string{}
			}
			cfg := mustLoad(t, LoadOptions{File: tt.file, Env: env, Flags: boundFlags(t, tt.flags...)})
			got := want{cfg.Gateway.Listen, cfg.Node.DataDir, cfg.Log.Level, cfg.Log.Format}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			wantConns := DefaultConfig().Gateway.Limits.MaxConns
			if tt.file != "" {
				wantConns = 500
			}
			if cfg.Gateway.Limits.MaxConns != wantConns {
				t.Errorf("max_conns = %d, want %d", cfg.Gateway.Limits.MaxConns, wantConns)
			}
			if cfg.Gateway.Limits.MaxConnsPerIP != 32 {
				t.Errorf("max_conns_per_ip = %d: a partial limits table reset a sibling key", cfg.Gateway.Limits.MaxConnsPerIP)
			}
		})
	}
}

func TestLoadNilEnvReadsProcessEnvironment(t *testing.T) {
	t.Setenv("CHIMALLI_LOG__LEVEL", "debug")
	cfg := mustLoad(t, LoadOptions{})
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want debug from the process environment", cfg.Log.Level)
	}
}

func TestLoadEnvMapping(t *testing.T) {
	tests := []struct {
		name string
		env  string
		get  func(*Config) any
		want any
	}{
		{"double underscore", "CHIMALLI_NODE__DATA_DIR=/d", func(c *Config) any { return c.Node.DataDir }, "/d"},
		{"single underscore", "CHIMALLI_NODE_DATA_DIR=/d", func(c *Config) any { return c.Node.DataDir }, "/d"},
		{"spec example listen", "CHIMALLI_GATEWAY_LISTEN=0.0.0.0:1965", func(c *Config) any { return c.Gateway.Listen }, "0.0.0.0:1965"},
		{"three levels", "CHIMALLI_GATEWAY__LIMITS__MAX_TITAN_BYTES=1MiB", func(c *Config) any { return c.Gateway.Limits.MaxTitanBytes }, MiB},
		{"duration", "CHIMALLI_GATEWAY__LIMITS__REQUEST_TIMEOUT=2s", func(c *Config) any { return c.Gateway.Limits.RequestTimeout }, 2 * time.Second},
		{"bool", "CHIMALLI_ACCESS__DEFAULT_ALLOW=false", func(c *Config) any { return c.Access.DefaultAllow }, false},
		{"float", "CHIMALLI_RATE_LIMIT__REFILL_PER_SEC=0.5", func(c *Config) any { return c.RateLimit.RefillPerSec }, 0.5},
		{"int", "CHIMALLI_RATE_LIMIT__IPV6_PREFIX=56", func(c *Config) any { return c.RateLimit.IPv6Prefix }, 56},
		{"string list", "CHIMALLI_ACCESS__DENY=203.0.113.0/24, 198.51.100.7", func(c *Config) any { return c.Access.Deny },
			[]string{"203.0.113.0/24", "198.51.100.7"}},
		{"empty list", "CHIMALLI_ACCESS__ALLOW=", func(c *Config) any { return c.Access.Allow }, []string{}},
		{"int list", "CHIMALLI_GATEWAY__PUBLIC_PORTS=1965,1966", func(c *Config) any { return c.Gateway.PublicPorts }, []int{1965, 1966}},
		{"empty CHIMALLI_CONFIG is no file", "CHIMALLI_CONFIG=", func(c *Config) any { return c.Node.DataDir }, DefaultDataDir},
		{"other prefix ignored", "chimalli_log__level=debug", func(c *Config) any { return c.Log.Level }, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustLoad(t, LoadOptions{Env: []string{"HOME=/root", tt.env}})
			if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %#v, want %#v", tt.env, got, tt.want)
			}
		})
	}
}

func TestLoadEnvErrors(t *testing.T) {
	tests := []struct {
		name, env, want string
	}{
		{"unknown key", "CHIMALLI_GATEWAY__LISEN=x", "CHIMALLI_GATEWAY__LISEN: unknown key"},
		{"section is not a key", "CHIMALLI_GATEWAY=x", "CHIMALLI_GATEWAY: unknown key"},
		{"hosts only in a file", "CHIMALLI_GATEWAY__HOSTS=x", "CHIMALLI_GATEWAY__HOSTS: lists of tables"},
		{"bad int", "CHIMALLI_GATEWAY__LIMITS__MAX_CONNS=lots", "gateway.limits.max_conns: "},
		{"bad duration", "CHIMALLI_GATEWAY__LIMITS__WRITE_TIMEOUT=soon", `gateway.limits.write_timeout: invalid duration "soon"`},
		{"bad byte size", "CHIMALLI_GATEWAY__LIMITS__MAX_TITAN_BYTES=10XB", `gateway.limits.max_titan_bytes: "10XB": not a byte size`},
		{"invalid value", "CHIMALLI_LOG__LEVEL=loud", `log.level: unknown log level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(LoadOptions{Env: []string{tt.env}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load(%s) error = %v, want it to contain %q", tt.env, err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v holds no *FieldError", err)
			}
		})
	}
}

// TestEnvSpellingsAreUnambiguous guards the single-underscore spelling:
// every spelling of every settable key must name exactly one key.
func TestEnvSpellingsAreUnambiguous(t *testing.T) {
	owner := map[string]string{}
	n := 0
	for _, k := range configKeys() {
		if !k.envSettable() {
			continue
		}
		n++
		for _, s := range []string{strings.ReplaceAll(k.Path, ".", "__"), strings.ReplaceAll(k.Path, ".", "_")} {
			if o, ok := owner[s]; ok && o != k.Path {
				t.Errorf("CHIMALLI_%s names both %s and %s", strings.ToUpper(s), o, k.Path)
			}
			owner[s] = k.Path
		}
	}
	if n < 25 {
		t.Fatalf("only %d settable keys; schema walk is broken", n)
	}
	if got := len(envKeys()); got != len(owner) {
		t.Errorf("envKeys has %d spellings, want %d", got, len(owner))
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	tests := []struct {
		name, file, content string
		want                []string
	}{
		{"yaml typo", "c.yaml", "gateway:\n  lisen: x\n", []string{"gateway.lisen: unknown key"}},
		{"yaml top level", "c.yml", "gatway: {}\n", []string{"gatway: unknown key"}},
		{"yaml wrong case", "c.yaml", "Log: {level: info}\n", []string{"Log: unknown key"}},
		{"yaml all reported", "c.yaml", "log: {levle: info, fromat: text}\nadmin: {sock: x}\n",
			[]string{"log.levle: unknown key", "log.fromat: unknown key", "admin.sock: unknown key"}},
		{"host key", "c.yaml", "gateway:\n  hosts:\n    - {name: a.example, nmae: b, routes: [{prefix: /, docroot: d}]}\n",
			[]string{"gateway.hosts[0].nmae: unknown key"}},
		{"route key", "c.yaml", "gateway:\n  hosts:\n    - name: a.example\n      routes: [{prefix: /, docroot: d}, {prefx: /x/, docroot: d}]\n",
			[]string{"gateway.hosts[0].routes[1].prefx: unknown key"}},
		{"toml typo", "c.toml", "[gateway.limits]\nmax_con = 3\n", []string{"gateway.limits.max_con: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(LoadOptions{File: writeConfig(t, tt.file, tt.content), Env: []string{}})
			if err == nil {
				t.Fatal("Load accepted an unknown key")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("error does not wrap ErrUnknownKey: %v", err)
			}
		})
	}
}

const sameYAML = `
node: {id: n1, data_dir: /srv/c}
gateway:
  listen: "[::]:1965"
  public_ports: [1965, 443]
  limits: {max_titan_bytes: 512KiB, write_timeout: 1m}
  hosts:
    - name: Example.org
      aliases: ["::1"]
      routes:
        - prefix: /app/
          require_cert: true
          tofu: claim
          allowed_fingerprints: ["sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]
          upstream: tcp://10.0.0.2:7000
          proxy_protocol: true
          uploads: true
          max_upload_bytes: 1048576
          timeout: 10s
        - {prefix: /, docroot: /srv/www}
access: {default_allow: false, allow: [10.0.0.0/8]}
rate_limit: {capacity: 5.5, refill_per_sec: 0.25}
log: {level: INFO}
`

const sameTOML = `
[node]
id = "n1"
data_dir = "/srv/c"

[gateway]
listen = "[::]:1965"
public_ports = [1965, 443]

[gateway.limits]
max_titan_bytes = "512KiB"
write_timeout = "1m"

[[gateway.hosts]]
name = "Example.org"
aliases = ["::1"]

[[gateway.hosts.routes]]
prefix = "/app/"
require_cert = true
tofu = "claim"
allowed_fingerprints = ["sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]
upstream = "tcp://10.0.0.2:7000"
proxy_protocol = true
uploads = true
max_upload_bytes = 1048576
timeout = "10s"

[[gateway.hosts.routes]]
prefix = "/"
docroot = "/srv/www"

[access]
default_allow = false
allow = ["10.0.0.0/8"]

[rate_limit]
capacity = 5.5
refill_per_sec = 0.25

[log]
level = "INFO"
`

func TestLoadYAMLAndTOMLAgree(t *testing.T) {
	y := mustLoad(t, LoadOptions{File: writeConfig(t, "c.yaml", sameYAML), Env: []string{}})
	tm := mustLoad(t, LoadOptions{File: writeConfig(t, "c.toml", sameTOML), Env: []string{}})
	if !reflect.DeepEqual(y, tm) {
		t.Fatalf("YAML and TOML differ:\nyaml %+v\ntoml %+v", y, tm)
	}
	r := y.Gateway.Hosts[0].Routes[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"max_titan_bytes", y.Gateway.Limits.MaxTitanBytes, 512 * KiB},
		{"write_timeout", y.Gateway.Limits.WriteTimeout, time.Minute},
		{"handshake_timeout kept", y.Gateway.Limits.HandshakeTimeout, 5 * time.Second},
		{"public_ports", y.Gateway.PublicPorts, []int{1965, 443}},
		{"route timeout", r.Timeout, 10 * time.Second},
		{"route connect_timeout default", r.ConnectTimeout, 5 * time.Second},
		{"second route timeout default", y.Gateway.Hosts[0].Routes[1].Timeout, 30 * time.Second},
		{"max_upload_bytes", r.MaxUploadBytes, MiB},
		{"capacity", y.RateLimit.Capacity, 5.5},
		{"hard_factor kept", y.RateLimit.HardFactor, 3.0},
		{"allow", y.Access.Allow, []string{"10.0.0.0/8"}},
		{"deny kept", y.Access.Deny, []string{}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadValueErrors(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"bare number duration", "gateway: {limits: {handshake_timeout: 5}}", "gateway.limits.handshake_timeout: invalid duration 5: a duration needs a unit"},
		{"bad duration", "gateway: {limits: {request_timeout: fast}}", `gateway.limits.request_timeout: invalid duration "fast"`},
		{"route bare duration", "gateway: {hosts: [{name: a.example, routes: [{prefix: /, docroot: d, timeout: 30}]}]}", "gateway.hosts[0].routes[0].timeout: invalid duration 30"},
		{"bad byte size", "gateway: {limits: {max_titan_bytes: 10XB}}", `gateway.limits.max_titan_bytes: "10XB": not a byte size`},
		{"negative byte size", "gateway: {limits: {max_titan_bytes: -1}}", "gateway.limits.max_titan_bytes: must be > 0"},
		{"bad int", "gateway: {limits: {max_conns: many}}", "gateway.limits.max_conns: "},
		{"list for scalar", "log: {level: [a, b]}", "log.level: "},
		{"scalar for section", "gateway: 3", "gateway: "},
		{"explicit zero route timeout", "gateway: {hosts: [{name: a.example, routes: [{prefix: /, docroot: d, timeout: 0s}]}]}", "gateway.hosts[0].routes[0].timeout: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(LoadOptions{File: writeConfig(t, "c.yaml", tt.content), Env: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadByteSizeForms(t *testing.T) {
	tests := []struct {
		name, value string
		want        ByteSize
	}{
		{"plain integer", "1048576", MiB},
		{"binary", `"10MiB"`, 10 * MiB},
		{"decimal", `"1GB"`, GB},
		{"spaced", `"512 KiB"`, 512 * KiB},
		{"yaml unquoted", "2KiB", 2 * KiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, "c.yaml", "gateway:\n  limits:\n    max_titan_bytes: "+tt.value+"\n")
			cfg := mustLoad(t, LoadOptions{File: p, Env: []string{}})
			if got := cfg.Gateway.Limits.MaxTitanBytes; got != tt.want {
				t.Errorf("max_titan_bytes %s = %d, want %d", tt.value, got, tt.want)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(t.TempDir(), "none.yaml"), "none.yaml"},
		{"unsupported extension", writeConfig(t, "c.json", "{}"), "unsupported extension"},
		{"malformed yaml", writeConfig(t, "c.yaml", "gateway: [\n"), "c.yaml"},
		{"malformed toml", writeConfig(t, "c.toml", "[gateway\n"), "c.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(LoadOptions{File: tt.path, Env: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestBindFlags(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	d := DefaultConfig()
	want := map[string]string{
		FlagListen: d.Gateway.Listen, FlagDataDir: d.Node.DataDir,
		FlagLogLevel: d.Log.Level, FlagLogFormat: d.Log.Format,
	}
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		if w, ok := want[f.Name]; !ok || f.DefValue != w {
			t.Errorf("flag --%s default %q, want %q (known: %v)", f.Name, f.DefValue, w, ok)
		}
		if flagKey(f.Name) == "" {
			t.Errorf("flag --%s maps to no key", f.Name)
		}
	})
	if n != len(want) {
		t.Errorf("BindFlags registered %d flags, want %d", n, len(want))
	}
}

func TestLoadFlagValueValidated(t *testing.T) {
	_, err := Load(LoadOptions{Env: []string{}, Flags: boundFlags(t, "--listen=nope")})
	if err == nil || !strings.Contains(err.Error(), `gateway.listen: invalid address "nope"`) {
		t.Fatalf("error = %v, want the listen flag value rejected", err)
	}
}

// bytesProvider is a koanf.Provider over a byte slice.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error)    { return b, nil }
func (b bytesProvider) Read() (map[string]any, error) { return nil, errors.New("not supported") }

// FuzzLoadYAML feeds arbitrary YAML to the loader. Invariant: whatever Load
// accepts is valid, and every typed helper on it succeeds.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(sameYAML))
	f.Add([]byte(precedenceFile))
	f.Add([]byte("gateway: {limits: {max_titan_bytes: 1GB}}"))
	f.Add([]byte("access: {deny: ['::ffff:10.0.0.0/104', 10.1.2.3]}"))
	if b, err := os.ReadFile(filepath.Join(examplesDir, "chimalli.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := load(bytesProvider(data), yaml.Parser(), "fuzz.yaml", []string{}, nil)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted an invalid config: %v", err)
		}
		if _, err := cfg.Access.AllowPrefixes(); err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.Access.DenyPrefixes(); err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.Gateway.ListenPort(); err != nil {
			t.Fatal(err)
		}
		for _, h := range cfg.Gateway.Hosts {
			for _, r := range h.Routes {
				if _, err := r.Fingerprints(); err != nil {
					t.Fatal(err)
				}
				if r.Upstream != "" {
					if _, err := r.UpstreamTarget(); err != nil {
						t.Fatal(err)
					}
				}
				if cfg.UploadLimit(r) <= 0 {
					t.Fatalf("upload limit %d", cfg.UploadLimit(r))
				}
			}
		}
	})
}

func BenchmarkLoadExampleYAML(b *testing.B) {
	opts := LoadOptions{File: filepath.Join(examplesDir, "chimalli.yaml"), Env: []string{}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(opts); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLoadReportsEnvAndFileProblemsTogether(t *testing.T) {
	p := writeConfig(t, "c.yaml", "gateway: {lisen: x}\n")
	_, err := Load(LoadOptions{File: p, Env: []string{"CHIMALLI_LOG__LEVL=info"}})
	for _, w := range []string{"CHIMALLI_LOG__LEVL: unknown key", "gateway.lisen: unknown key"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error = %v, want it to contain %q", err, w)
		}
	}
}

// A bad value gets the same message, by key, from a file and from a
// variable, in the user's words (no Go type names), and decoding problems
// do not hide the value errors of other keys.
func TestLoadSameErrorFromFileAndEnv(t *testing.T) {
	tests := []struct {
		name, file, env, want string
	}{
		{"negative threshold", "auto_ban: {threshold: -1}", "CHIMALLI_AUTO_BAN__THRESHOLD=-1",
			"auto_ban.threshold: must be 0..4294967295, got -1"},
		{"threshold too large", "auto_ban: {threshold: 4294967296}", "CHIMALLI_AUTO_BAN__THRESHOLD=4294967296",
			"auto_ban.threshold: must be 0..4294967295, got 4294967296"},
		{"negative max_conns", "gateway: {limits: {max_conns: -1}}", "CHIMALLI_GATEWAY__LIMITS__MAX_CONNS=-1",
			"gateway.limits.max_conns: must be > 0, got -1"},
		{"fraction for an integer", "gateway: {limits: {max_conns: 1.5}}", "CHIMALLI_GATEWAY__LIMITS__MAX_CONNS=1.5",
			"gateway.limits.max_conns: want an integer, got 1.5"},
		{"word for an integer", "gateway: {limits: {max_conns: many}}", "CHIMALLI_GATEWAY__LIMITS__MAX_CONNS=many",
			`gateway.limits.max_conns: want an integer, got "many"`},
		{"word for a number", "rate_limit: {capacity: abc}", "CHIMALLI_RATE_LIMIT__CAPACITY=abc",
			`rate_limit.capacity: want a number, got "abc"`},
		{"word for a boolean", "access: {default_allow: maybe}", "CHIMALLI_ACCESS__DEFAULT_ALLOW=maybe",
			`access.default_allow: want true or false, got "maybe"`},
		{"fractional byte size", "gateway: {limits: {max_titan_bytes: 1.5MiB}}", "CHIMALLI_GATEWAY__LIMITS__MAX_TITAN_BYTES=1.5MiB",
			`gateway.limits.max_titan_bytes: "1.5MiB": not a byte size (use an integer with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. 1536KiB)`},
		{"bare number duration", "gateway: {limits: {write_timeout: 5}}", "CHIMALLI_GATEWAY__LIMITS__WRITE_TIMEOUT=5",
			`gateway.limits.write_timeout: invalid duration 5: a duration needs a unit, e.g. "5s"`},
		{"word for a port", "gateway: {public_ports: [1965, a]}", "CHIMALLI_GATEWAY__PUBLIC_PORTS=1965,a",
			`gateway.public_ports[1]: want an integer, got "a"`},
		{"bad CIDR", "access: {deny: [10.0.0.0/33]}", "CHIMALLI_ACCESS__DENY=10.0.0.0/33",
			`access.deny[0]: invalid CIDR "10.0.0.0/33": prefix length "33" is not 0..32`},
		{"not an address", "gateway: {listen: nope}", "CHIMALLI_GATEWAY__LISTEN=nope",
			`gateway.listen: invalid address "nope": want host:port, e.g. 127.0.0.1:1965, [::1]:1965 or :1965`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each source also carries an independent value error, which
			// must be reported beside the first.
			const other = "log.format: "
			fromFile := writeConfig(t, "c.yaml", tt.file+"\nlog: {format: xml}\n")
			_, errFile := Load(LoadOptions{File: fromFile, Env: []string{}})
			_, errEnv := Load(LoadOptions{Env: []string{tt.env, "CHIMALLI_LOG__FORMAT=xml"}})
			for src, err := range map[string]error{"file": errFile, "env": errEnv} {
				if err == nil {
					t.Fatalf("%s: accepted", src)
				}
				lines := strings.Split(err.Error(), "\n")
				if !slices.Contains(lines, tt.want) {
					t.Errorf("%s: error\n%v\nhas no line %q", src, err, tt.want)
				}
				if !strings.Contains(err.Error(), other) {
					t.Errorf("%s: error\n%v\nhides the log.format error", src, err)
				}
				if len(lines) != 3 {
					t.Errorf("%s: %d lines, want the heading and 2 problems:\n%v", src, len(lines), err)
				}
				if strings.Contains(err.Error(), "interface") || strings.Contains(err.Error(), "strconv") {
					t.Errorf("%s: error leaks Go internals: %v", src, err)
				}
			}
		})
	}
}

// Unknown keys, values of the wrong type and invalid values are all
// reported at once, each by key, and a value that cannot be decoded is
// not reported a second time by validation.
func TestLoadReportsEveryKindOfProblemAtOnce(t *testing.T) {
	p := writeConfig(t, "c.yaml", `
gateway:
  lisen: x
  limits: {max_conns: lots, handshake_timeout: 0s}
  hosts:
    - name: a.example
      routes: [{prefix: /, docroot: d, timeout: x}]
log: {level: [a, b], format: xml}
`)
	_, err := Load(LoadOptions{File: p, Env: []string{"CHIMALLI_RATE_LIMIT__MAX_KEYS=0"}})
	want := `invalid configuration:
gateway.hosts[0].routes[0].timeout: invalid duration "x": want a number with a unit, e.g. "5s" or "1m30s"
gateway.limits.max_conns: want an integer, got "lots"
gateway.lisen: unknown key
log.level: want a string, got a list
gateway.limits.handshake_timeout: must be > 0, got 0s
rate_limit.max_keys: must be > 0, got 0
log.format: unknown log format "xml" (want json or text)`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
	if !errors.Is(err, ErrUnknownKey) {
		t.Error("error does not wrap ErrUnknownKey")
	}
}

// CHIMALLI_CONFIG names the file when --config (LoadOptions.File) does not.
func TestLoadConfigFileFromEnv(t *testing.T) {
	fromEnv := writeConfig(t, "env.yaml", "node: {data_dir: /from/env-file}\n")
	fromFlag := writeConfig(t, "flag.toml", "[node]\ndata_dir = \"/from/flag-file\"\n")
	env := []string{"CHIMALLI_CONFIG=" + fromEnv}
	if got := mustLoad(t, LoadOptions{Env: env}).Node.DataDir; got != "/from/env-file" {
		t.Errorf("CHIMALLI_CONFIG: data_dir = %q, want /from/env-file", got)
	}
	if got := mustLoad(t, LoadOptions{File: fromFlag, Env: env}).Node.DataDir; got != "/from/flag-file" {
		t.Errorf("--config and CHIMALLI_CONFIG: data_dir = %q, want the flag's file to win", got)
	}
	missing := filepath.Join(t.TempDir(), "none.yaml")
	_, err := Load(LoadOptions{Env: []string{"CHIMALLI_CONFIG=" + missing}})
	if err == nil || !strings.Contains(err.Error(), missing+" (CHIMALLI_CONFIG)") {
		t.Errorf("missing CHIMALLI_CONFIG file: error %v, want it to name the file and the variable", err)
	}
}
