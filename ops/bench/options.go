package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/spf13/pflag"
)

// ErrInvalidOptions is wrapped by every error Options.Validate returns.
var ErrInvalidOptions = errors.New("invalid bench options")

// MaxConcurrency bounds Options.Concurrency. Each worker owns two HDR
// histograms (about 160 KiB together), so this also bounds their memory to
// about 160 MiB.
const MaxConcurrency = 1024

// Resolver looks up the addresses of a host name. *net.Resolver implements
// it; tests pass a fake.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Options configures a run. Start from DefaultOptions; BindFlags registers a
// command-line flag for every field a user sets.
type Options struct {
	// URLs are the gemini:// URLs to load, used round-robin by each worker.
	URLs []string
	// URLsFile names a file of further URLs, one a line, parsed with
	// ParseURLList. Run reads it; Validate does not.
	URLsFile string
	// Concurrency is the number of workers, hence the maximum number of
	// requests in flight.
	Concurrency int
	// Duration is how long the measured part of a run lasts. It is ignored
	// when Requests is set.
	Duration time.Duration
	// Requests, when positive, ends the run after this many measured
	// requests instead of after Duration.
	Requests int64
	// Rate is the target request rate per second of the open loop; 0 selects
	// the closed loop (as fast as possible).
	Rate float64
	// Resume enables TLS session resumption through one client session
	// cache shared by all workers; by default every request does a full
	// handshake.
	Resume bool
	// CertFile and KeyFile name a PEM client certificate and its key, sent
	// whenever a server asks for one. Both or neither.
	CertFile, KeyFile string
	// KeyExchange selects the TLS key exchange groups the client offers:
	// KEXDefault ("" or "default") keeps Go's defaults, which prefer the
	// post-quantum hybrid X25519MLKEM768 as modern clients do; KEXX25519
	// ("x25519") offers classic X25519 only, which makes each handshake
	// much cheaper for the generator (and the server).
	KeyExchange string
	// Timeout bounds each request, from dial to the end of the body.
	Timeout time.Duration
	// AllowRemote lifts the loopback-only safety check.
	AllowRemote bool
	// JSON asks the caller to print Report.WriteJSON instead of WriteText.
	// Run itself does not look at it.
	JSON bool
	// Progress is the interval of the progress line Run writes; 0 disables
	// it.
	Progress time.Duration
	// Quiet disables the progress line.
	Quiet bool
	// Warmup is a period at the start of the run whose requests are made
	// but not recorded.
	Warmup time.Duration

	// Resolver is used by the safety check; nil means net.DefaultResolver.
	Resolver Resolver
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Key exchange choices for Options.KeyExchange.
const (
	KEXDefault = "default"
	KEXX25519  = "x25519"
)

// DefaultOptions returns the defaults of `chimalli bench`: 16 workers, 10 s,
// closed loop, 10 s timeout, progress every second, no resumption.
func DefaultOptions() Options {
	return Options{
		Concurrency: 16,
		Duration:    10 * time.Second,
		Timeout:     10 * time.Second,
		Progress:    time.Second,
		KeyExchange: KEXDefault,
	}
}

// BindFlags registers the bench flags on fs, storing into o. Flag defaults
// come from DefaultOptions, and registering sets o's fields to them. URLs are
// positional arguments: the command assigns them to o.URLs itself.
func BindFlags(fs *pflag.FlagSet, o *Options) {
	d := DefaultOptions()
	fs.StringVar(&o.URLsFile, "urls-file", d.URLsFile,
		"read more target URLs from `FILE`, one per line; blank lines and lines starting with # are ignored")
	fs.IntVarP(&o.Concurrency, "concurrency", "c", d.Concurrency,
		fmt.Sprintf("number of concurrent connections (workers), 1 to %d", MaxConcurrency))
	fs.DurationVarP(&o.Duration, "duration", "d", d.Duration,
		"how long to measure, after the warm-up; ignored when --requests is set")
	fs.Int64VarP(&o.Requests, "requests", "n", d.Requests,
		"stop after this many measured requests instead of after --duration (0: use --duration)")
	fs.Float64Var(&o.Rate, "rate", d.Rate,
		"open loop: start requests at this fixed rate per second, whatever the responses, and measure latency from each scheduled start (avoids coordinated omission); 0: closed loop, as fast as possible")
	fs.BoolVar(&o.Resume, "resume", d.Resume,
		"resume TLS sessions through a shared session cache (default: a full handshake per request)")
	fs.StringVar(&o.CertFile, "cert", d.CertFile,
		"PEM client certificate `FILE` to present when a server asks for one (needs --key)")
	fs.StringVar(&o.KeyFile, "key", d.KeyFile,
		"PEM private key `FILE` of --cert")
	fs.StringVar(&o.KeyExchange, "kex", d.KeyExchange,
		"TLS key exchange to offer: \"default\" (Go's defaults, post-quantum hybrid X25519MLKEM768 first, like modern clients) or \"x25519\" (classic only, cheaper for the generator)")
	fs.DurationVar(&o.Timeout, "timeout", d.Timeout,
		"limit for each request, from dial to the end of the body")
	fs.BoolVar(&o.AllowRemote, "allow-remote", d.AllowRemote,
		"allow targets that are not loopback addresses; only load servers you operate")
	fs.BoolVar(&o.JSON, "json", d.JSON,
		"print the report as JSON instead of a table")
	fs.DurationVar(&o.Progress, "progress", d.Progress,
		"interval of the progress line on stderr (0: none)")
	fs.BoolVar(&o.Quiet, "quiet", d.Quiet,
		"no progress line")
	fs.DurationVar(&o.Warmup, "warmup", d.Warmup,
		"run this long before measuring; warm-up requests are not counted")
}

// Validate checks o without touching the network or the file system: the
// URLs file is read, and targets checked for safety, by Run.
func (o *Options) Validate() error {
	if len(o.URLs) == 0 && o.URLsFile == "" {
		return fmt.Errorf("%w: no target URL (give one or more, or --urls-file)", ErrInvalidOptions)
	}
	for _, u := range o.URLs {
		if _, err := parseTarget(u); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
		}
	}
	switch {
	case o.Concurrency < 1 || o.Concurrency > MaxConcurrency:
		return fmt.Errorf("%w: concurrency must be 1 to %d, got %d", ErrInvalidOptions, MaxConcurrency, o.Concurrency)
	case o.Requests < 0:
		return fmt.Errorf("%w: request count must not be negative, got %d", ErrInvalidOptions, o.Requests)
	case o.Requests == 0 && o.Duration <= 0:
		return fmt.Errorf("%w: duration must be positive when no request count is given, got %s", ErrInvalidOptions, o.Duration)
	case math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate < 0:
		return fmt.Errorf("%w: rate must be a finite number >= 0, got %v", ErrInvalidOptions, o.Rate)
	case o.Rate > 0 && o.Rate < 1e-3:
		return fmt.Errorf("%w: rate below 0.001 requests/s, got %v", ErrInvalidOptions, o.Rate)
	case o.Timeout <= 0:
		return fmt.Errorf("%w: timeout must be positive, got %s", ErrInvalidOptions, o.Timeout)
	case o.Warmup < 0:
		return fmt.Errorf("%w: warm-up must not be negative, got %s", ErrInvalidOptions, o.Warmup)
	case o.Progress < 0:
		return fmt.Errorf("%w: progress interval must not be negative, got %s", ErrInvalidOptions, o.Progress)
	case o.KeyExchange != "" && o.KeyExchange != KEXDefault && o.KeyExchange != KEXX25519:
		return fmt.Errorf("%w: key exchange must be %q or %q, got %q", ErrInvalidOptions, KEXDefault, KEXX25519, o.KeyExchange)
	case (o.CertFile == "") != (o.KeyFile == ""):
		return fmt.Errorf("%w: --cert and --key go together", ErrInvalidOptions)
	}
	return nil
}

// closedLoop reports whether o selects the closed loop.
func (o *Options) closedLoop() bool { return o.Rate == 0 }
