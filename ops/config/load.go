package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
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

// EnvConfigFile names the configuration file when LoadOptions.File is
// empty (a --config flag wins over it); it is not a key.
const EnvConfigFile = "CHIMALLI_CONFIG"

// ErrUnknownKey is wrapped by the FieldError Load returns for a key that is
// not part of the schema (a typo in a file or a CHIMALLI_* variable).
var ErrUnknownKey = errors.New("unknown key")

// LoadOptions says where Load reads configuration from. Each source
// overrides the ones before it, and only for the keys it sets:
// DefaultConfig ← File ← Env ← Flags.
type LoadOptions struct {
	// File is a YAML (.yaml, .yml) or TOML (.toml) file; empty means the
	// file named by CHIMALLI_CONFIG (EnvConfigFile) in Env, or none.
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

// Load reads the configuration from defaults, opts.File (or CHIMALLI_CONFIG),
// the environment and opts.Flags, in that order, decodes it and validates
// it. Problems are reported together, joined: unknown keys, values of the
// wrong type and invalid values, each a *FieldError naming its key
// ("gateway.lisen: unknown key") or, for an unknown variable, the variable
// ("CHIMALLI_GATEWAY__LISEN: unknown key"). A value is converted to its
// key's type the same way whichever source it comes from, so a variable
// and a file line with the same value get the same error. A file that
// cannot be read or parsed is reported alone.
func Load(opts LoadOptions) (*Config, error) {
	var src koanf.Provider
	var parser koanf.Parser
	path, name := opts.File, opts.File
	if path == "" {
		path = lookupEnv(opts.Env, EnvConfigFile)
		name = path + " (" + EnvConfigFile + ")"
	}
	if path != "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml":
			parser = yaml.Parser()
		case ".toml":
			parser = toml.Parser()
		default:
			return nil, fmt.Errorf("config file %s: unsupported extension (want .yaml, .yml or .toml)", name)
		}
		src = file.Provider(path)
	}
	return load(src, parser, name, opts.Env, opts.Flags)
}

// lookupEnv returns the value of the variable key in environ (os.Environ
// form; nil means the process environment), or "".
func lookupEnv(environ []string, key string) string {
	if environ == nil {
		return os.Getenv(key)
	}
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in os.Environ
		}
	}
	return v
}

// valueErrors returns the problems Validate found, except those on a key
// whose value could not be decoded (it holds its default, not what the
// user wrote) or on a key above or below it: the decode error says it.
func valueErrors(err error, decodeErrs []error) []error {
	if err == nil {
		return nil
	}
	var bad []string
	for _, e := range decodeErrs {
		var fe *FieldError
		if errors.As(e, &fe) && !errors.Is(fe, ErrUnknownKey) {
			bad = append(bad, fe.Key)
		}
	}
	var out []error
	for _, e := range flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) && slices.ContainsFunc(bad, func(k string) bool { return sameBranch(k, fe.Key) }) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// sameBranch reports whether key paths a and b are equal or one holds the
// other ("gateway.hosts[0]" holds "gateway.hosts[0].routes[1].timeout").
func sameBranch(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || strings.HasPrefix(b, a) && (b[len(a)] == '.' || b[len(a)] == '[')
}

// flatten returns the errors joined in err (errors.Join), or err itself.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
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

	// Every problem at once: unknown keys and values of the wrong type do
	// not hide the value errors of other keys.
	cfg, decodeErrs := decode(ko)
	errs := append(envErrs, decodeErrs...)
	errs = append(errs, valueErrors(cfg.Validate(), decodeErrs)...)
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
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = envScalar(k.Type.Elem(), p)
		}
		return k.Path, out, nil
	}
	return k.Path, envScalar(k.Type, val), nil
}

// envScalar reads a variable's value as a file would: for a number or
// boolean key, a number ("-1", "1.5") or a boolean ("true") becomes one,
// so that CHIMALLI_X=-1 and x: -1 get the same checks and messages. Other
// values, and every value of other keys, stay strings.
func envScalar(t reflect.Type, val string) any {
	if t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[ByteSize]() {
		return val
	}
	s := strings.TrimSpace(val)
	switch t.Kind() {
	case reflect.Bool:
		if b, err := strconv.ParseBool(s); err == nil {
			return b
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	return val
}

// errNotFromEnv explains why a list of tables cannot come from a variable.
var errNotFromEnv = errors.New("lists of tables (gateway.hosts) can only be set in a file")

// decode turns the merged koanf tree into a Config. It starts from
// DefaultConfig, so that a key whose value cannot be decoded keeps its
// default instead of a zero that validation would report again. It returns
// the Config and the problems found: values of the wrong type and unknown
// keys, each a FieldError naming its key.
func decode(ko *koanf.Koanf) (*Config, []error) {
	cfg := DefaultConfig()
	unused, err := decodeInto(ko, cfg, typeHook)
	errs := fieldErrors(err)
	if err != nil {
		// mapstructure does not list the unknown keys of a table in which
		// a value failed: decode again, failures replaced by zero values.
		lenient := func(from, to reflect.Type, data any) (any, error) {
			if v, err := typeHook(from, to, data); err == nil {
				return v, nil
			}
			return reflect.Zero(to).Interface(), nil
		}
		unused, _ = decodeInto(ko, DefaultConfig(), lenient)
	}
	for _, k := range unused {
		errs = append(errs, &FieldError{Key: k, Err: ErrUnknownKey})
	}
	sortErrors(errs)
	return cfg, errs
}

// decodeInto decodes the koanf tree into cfg with the given type hook and
// returns the keys that match no field and the decoding error.
func decodeInto(ko *koanf.Koanf, cfg *Config, hook mapstructure.DecodeHookFuncType) ([]string, error) {
	var md mapstructure.Metadata
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			routeDefaultsHook,
			hook,
		),
		// Conversions not handled by typeHook: a number for a string
		// (node.id: 1234), one value for a list of values.
		WeaklyTypedInput: true,
		// A list or a null replaces the default instead of merging into it.
		ZeroFields: true,
		Metadata:   &md,
		MatchName:  func(mapKey, fieldName string) bool { return mapKey == fieldName },
		TagName:    "koanf",
	}
	err := ko.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc})
	return md.Unused, err
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
		// typeHook reports every type mismatch of the schema; these are
		// fallbacks, so that no Go type name reaches the user.
		var pe *mapstructure.ParseError
		var ue *mapstructure.UnconvertibleTypeError
		switch {
		case errors.As(inner, &pe) && pe.Expected.IsValid():
			inner = fmt.Errorf("want %s, got %s", kindName(pe.Expected.Type()), describeValue(pe.Value))
		case errors.As(inner, &ue) && ue.Expected.IsValid():
			inner = fmt.Errorf("want %s, got %s", kindName(ue.Expected.Type()), describeValue(ue.Value))
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

// kindName names what a key of type t takes, for error messages ("an
// integer").
func kindName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return `a duration such as "5s"`
	case reflect.TypeFor[ByteSize]():
		return `a byte size such as "10MiB"`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Struct {
			return "a list of tables"
		}
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a table (keys and values)"
	}
	return "another type"
}

// describeValue names a decoded value for error messages: a scalar as
// written (strings quoted), a list or a table by what it is.
func describeValue(v any) string {
	if v == nil {
		return "nothing"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return strconv.Quote(rv.String())
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a table"
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// typeHook converts a value read from a file, a variable or a flag to the
// type of its key, or reports, in the user's words, why it cannot:
// `want an integer, got "many"`, `want a string, got a list`. Strings are
// converted the same way whatever their source, so CHIMALLI_X=-1 and
// x: -1 in a file reach validation alike. Durations and byte sizes have
// their own syntax (durationValue, byteSizeValue).
func typeHook(from, to reflect.Type, data any) (any, error) {
	if data == nil {
		return data, nil
	}
	switch to {
	case reflect.TypeFor[time.Duration]():
		return durationValue(data)
	case reflect.TypeFor[ByteSize]():
		return byteSizeValue(data)
	}
	v := reflect.ValueOf(data)
	mismatch := func() (any, error) {
		return nil, fmt.Errorf("want %s, got %s", kindName(to), describeValue(data))
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := integerValue(v)
		if !ok {
			return mismatch()
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := integerValue(v)
		if !ok {
			return mismatch()
		}
		if max := uint64(1)<<to.Bits() - 1; n < 0 || uint64(n) > max {
			return nil, fmt.Errorf("must be 0..%d, got %d", max, n)
		}
		return uint64(n), nil
	case reflect.Float32, reflect.Float64:
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return float64(v.Int()), nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return float64(v.Uint()), nil
		case reflect.Float32, reflect.Float64:
			return v.Float(), nil
		case reflect.String:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v.String()), 64); err == nil {
				return f, nil
			}
		}
		return mismatch()
	case reflect.Bool:
		switch v.Kind() {
		case reflect.Bool:
			return data, nil
		case reflect.String:
			if b, err := strconv.ParseBool(strings.TrimSpace(v.String())); err == nil {
				return b, nil
			}
		case reflect.Int, reflect.Int64:
			if n := v.Int(); n == 0 || n == 1 {
				return n == 1, nil
			}
		}
		return mismatch()
	case reflect.String:
		switch v.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
			return mismatch()
		}
	case reflect.Slice:
		switch {
		case v.Kind() == reflect.Map, v.Kind() == reflect.Struct,
			to.Elem().Kind() == reflect.Struct && v.Kind() != reflect.Slice && v.Kind() != reflect.Array:
			return mismatch()
		}
	case reflect.Struct:
		if v.Kind() != reflect.Map && v.Kind() != reflect.Struct {
			return mismatch()
		}
	}
	return data, nil
}

// integerValue returns v as an integer: an integer, a float without a
// fraction, or a string holding a base-10 integer ("-1", " 42 ").
func integerValue(v reflect.Value) (int64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if u := v.Uint(); u <= math.MaxInt64 {
			return int64(u), true
		}
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), true
		}
	case reflect.String:
		if n, err := strconv.ParseInt(strings.TrimSpace(v.String()), 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
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

// durationValue decodes a duration from a string ("5s", "1m30s") and
// refuses bare numbers, which would otherwise be read as nanoseconds.
func durationValue(data any) (any, error) {
	v := reflect.ValueOf(data)
	switch v.Kind() {
	case reflect.String:
		s := strings.TrimSpace(v.String())
		d, err := time.ParseDuration(s)
		if _, isNum := strconv.ParseFloat(s, 64); err != nil && isNum == nil {
			return nil, fmt.Errorf("invalid duration %s: a duration needs a unit, e.g. \"%ss\"", s, s)
		}
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q: want a number with a unit, e.g. \"5s\" or \"1m30s\"", s)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if _, ok := data.(time.Duration); ok {
			return data, nil
		}
		return nil, fmt.Errorf("invalid duration %v: a duration needs a unit, e.g. \"%vs\"", data, data)
	}
	return nil, fmt.Errorf("want %s, got %s", kindName(reflect.TypeFor[time.Duration]()), describeValue(data))
}

// byteSizeValue decodes a byte size from an integer or a string
// (ParseByteSize). A negative integer is kept for validation to report.
func byteSizeValue(data any) (any, error) {
	v := reflect.ValueOf(data)
	switch v.Kind() {
	case reflect.String:
		return ParseByteSize(v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if n, ok := integerValue(v); ok {
			return ByteSize(n), nil
		}
		return ParseByteSize(describeValue(data))
	}
	return nil, fmt.Errorf("want %s, got %s", kindName(reflect.TypeFor[ByteSize]()), describeValue(data))
}
