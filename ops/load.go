package ops

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "CHIMALLI_"

// EnvConfigFile is reserved for the CLI (the path of the configuration
// file); Load ignores it instead of reporting it as an unknown key.
const EnvConfigFile = "CHIMALLI_CONFIG"

// ErrUnknownKey is wrapped by the FieldError Load returns for a key that is
// not part of the schema (a typo in a file or a CHIMALLI_* variable).
var ErrUnknownKey = errors.New("unknown key")

// LoadOptions says where Load reads configuration from. Each source
// overrides the ones before it, and only for the keys it sets:
// DefaultConfig ← File ← Env ← Flags.
type LoadOptions struct {
	// File is a YAML (.yaml, .yml) or TOML (.toml) file; empty means none.
	File string
	// Env is the environment in os.Environ form; nil means os.Environ().
	// Only CHIMALLI_* variables are read.
	Env []string
	// Flags are the command-line flags registered by BindFlags; only flags
	// the user set override. Other flags in the set are ignored. May be nil.
	Flags *pflag.FlagSet
}

// Flag names registered by BindFlags.
const (
	FlagListen    = "listen"
	FlagDataDir   = "data-dir"
	FlagLogLevel  = "log-level"
	FlagLogFormat = "log-format"
)

// flagKey returns the configuration key a BindFlags flag sets, or "".
func flagKey(name string) string {
	switch name {
	case FlagListen:
		return "gateway.listen"
	case FlagDataDir:
		return "node.data_dir"
	case FlagLogLevel:
		return "log.level"
	case FlagLogFormat:
		return "log.format"
	}
	return ""
}

// BindFlags registers on fs the flags Load understands: --listen
// (gateway.listen), --data-dir (node.data_dir), --log-level (log.level) and
// --log-format (log.format). Pass the same fs in LoadOptions.Flags.
func BindFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.String(FlagListen, d.Gateway.Listen, "Gemini listen address host:port (gateway.listen)")
	fs.String(FlagDataDir, d.Node.DataDir, "directory for certificates, pins, the admin socket and state (node.data_dir)")
	fs.String(FlagLogLevel, d.Log.Level, "log level: debug, info, warn or error (log.level)")
	fs.String(FlagLogFormat, d.Log.Format, "log format: json or text (log.format)")
}

// Load reads the configuration from defaults, opts.File, the environment and
// opts.Flags, in that order, decodes it and validates it. Problems are
// reported together, joined, each a *FieldError naming its key
// ("gateway.lisen: unknown key") or, for the environment, its variable
// ("CHIMALLI_GATEWAY__LISEN: unknown key"); a value that cannot be decoded
// hides the validation of the rest. A file that cannot be read or parsed is
// reported alone.
func Load(opts LoadOptions) (*Config, error) {
	var src koanf.Provider
	var parser koanf.Parser
	if opts.File != "" {
		switch strings.ToLower(filepath.Ext(opts.File)) {
		case ".yaml", ".yml":
			parser = yaml.Parser()
		case ".toml":
			parser = toml.Parser()
		default:
			return nil, fmt.Errorf("config file %s: unsupported extension (want .yaml, .yml or .toml)", opts.File)
		}
		src = file.Provider(opts.File)
	}
	return load(src, parser, opts.File, opts.Env, opts.Flags)
}

// load is Load with the file source given as a provider and parser (nil
// for none), so that tests and fuzzers can feed bytes.
func load(src koanf.Provider, parser koanf.Parser, name string, environ []string, flags *pflag.FlagSet) (*Config, error) {
	ko := koanf.New(".")
	if err := ko.Load(structs.Provider(DefaultConfig(), "koanf"), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	if src != nil {
		if err := ko.Load(src, parser); err != nil {
			return nil, fmt.Errorf("config file %s: %w", name, err)
		}
	}

	keys := envKeys()
	var envErrs []error
	opt := env.Opt{
		Prefix: EnvPrefix,
		TransformFunc: func(k, v string) (string, any) {
			key, val, err := envToKey(keys, k, v)
			if err != nil {
				envErrs = append(envErrs, err)
			}
			return key, val
		},
	}
	if environ != nil {
		opt.EnvironFunc = func() []string { return environ }
	}
	if err := ko.Load(env.Provider(".", opt), nil); err != nil {
		return nil, fmt.Errorf("load environment: %w", err)
	}
	sortErrors(envErrs)

	if flags != nil {
		p := posflag.ProviderWithFlag(flags, ".", nil, func(f *pflag.Flag) (string, any) {
			key := flagKey(f.Name)
			if key == "" || !f.Changed {
				return "", nil
			}
			return key, f.Value.String()
		})
		if err := ko.Load(p, nil); err != nil {
			return nil, fmt.Errorf("load flags: %w", err)
		}
	}

	errs := envErrs
	cfg, err := decode(ko)
	if err != nil {
		errs = append(errs, err)
	} else if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return cfg, nil
}

// envKeys maps the accepted spellings of each settable key to the key:
// "node__data_dir" (the documented form, "__" between levels) and
// "node_data_dir" (single underscores, unambiguous for this schema).
func envKeys() map[string]configKey {
	m := make(map[string]configKey)
	for _, k := range configKeys() {
		if !k.envSettable() {
			continue
		}
		m[strings.ReplaceAll(k.Path, ".", "__")] = k
		m[strings.ReplaceAll(k.Path, ".", "_")] = k
	}
	return m
}

// envToKey maps CHIMALLI_NODE__DATA_DIR=v to ("node.data_dir", v). Lists of
// scalars are split on commas. It returns "" for variables to skip.
func envToKey(keys map[string]configKey, name, val string) (string, any, error) {
	if name == EnvConfigFile {
		return "", nil, nil
	}
	short := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
	k, ok := keys[short]
	if !ok {
		path := strings.ReplaceAll(short, "__", ".")
		why := ErrUnknownKey
		for _, c := range configKeys() {
			if c.Path == path || strings.HasPrefix(c.Path, path+"[]") {
				why = errNotFromEnv
			}
		}
		return "", nil, &FieldError{Key: name, Err: why}
	}
	if k.scalarList() {
		parts := []string{}
		for p := range strings.SplitSeq(val, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		return k.Path, parts, nil
	}
	return k.Path, val, nil
}

// errNotFromEnv explains why a list of tables cannot come from a variable.
var errNotFromEnv = errors.New("lists of tables (gateway.hosts) can only be set in a file")

// decode turns the merged koanf tree into a Config. Unknown keys and type
// errors are reported as FieldErrors naming the key.
func decode(ko *koanf.Koanf) (*Config, error) {
	var cfg Config
	var md mapstructure.Metadata
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			routeDefaultsHook,
			durationHook,
			mapstructure.TextUnmarshallerHookFunc(),
		),
		WeaklyTypedInput: true,
		Metadata:         &md,
		MatchName:        func(mapKey, fieldName string) bool { return mapKey == fieldName },
		TagName:          "koanf",
	}
	err := ko.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc})
	errs := fieldErrors(err)
	for _, k := range md.Unused {
		errs = append(errs, &FieldError{Key: k, Err: ErrUnknownKey})
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

// fieldErrors flattens a mapstructure error tree into FieldErrors.
func fieldErrors(err error) []error {
	switch e := err.(type) {
	case nil:
		return nil
	case *mapstructure.DecodeError:
		var nested *mapstructure.DecodeError
		if errors.As(e.Unwrap(), &nested) {
			return fieldErrors(e.Unwrap())
		}
		inner := e.Unwrap()
		var pe *mapstructure.ParseError
		if errors.As(inner, &pe) && pe.Expected.IsValid() {
			inner = fmt.Errorf("invalid value %q: want %s", fmt.Sprint(pe.Value), kindName(pe.Expected.Type()))
		}
		return []error{&FieldError{Key: e.Name(), Err: inner}}
	case interface{ Unwrap() []error }:
		var out []error
		for _, c := range e.Unwrap() {
			out = append(out, fieldErrors(c)...)
		}
		return out
	case interface{ Unwrap() error }:
		var nested *mapstructure.DecodeError
		if errors.As(err, &nested) {
			return fieldErrors(e.Unwrap())
		}
	}
	return []error{err}
}

// kindName names a type for error messages ("an integer").
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// sortErrors orders errors by message, for stable output.
func sortErrors(errs []error) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

// routeDefaultsHook fills keys a route in a file leaves out with the values
// of DefaultRoute, so that an omitted timeout is 30s but an explicit 0 is
// still reported by Validate.
func routeDefaultsHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[RouteConfig]() || from.Kind() != reflect.Map {
		return data, nil
	}
	in, ok := data.(map[string]any)
	if !ok {
		return data, nil
	}
	defaults, err := structs.Provider(DefaultRoute(), "koanf").Read()
	if err != nil {
		return nil, err
	}
	for k, v := range in {
		defaults[k] = v
	}
	return defaults, nil
}

// durationHook decodes durations from strings ("5s", "1m30s") and refuses
// bare numbers, which would otherwise be read as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	durType := reflect.TypeFor[time.Duration]()
	if to != durType || from == durType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(reflect.ValueOf(data).String())
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q: want a number with a unit, e.g. \"5s\" or \"1m30s\"", s)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("invalid duration %v: a duration needs a unit, e.g. \"%vs\"", data, data)
	}
	return data, nil
}
