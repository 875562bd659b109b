package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// ByteSize is a number of bytes. In configuration it is written as a plain
// integer (1048576) or an integer with a unit: B, KB, MB, GB, TB (powers of
// 1000) or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, with
// optional space before the unit ("10MiB", "512 KiB", "1GB").
type ByteSize int64

// Byte size units.
const (
	B   ByteSize = 1
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
	TB  ByteSize = 1000 * GB
)

// ErrBadByteSize is wrapped by the errors of ParseByteSize.
var ErrBadByteSize = errors.New("not a byte size")

// byteSizeHelp says how to write a byte size; %s is an example.
const byteSizeHelp = "use an integer with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. %s"

// byteUnit is a named multiple of a byte.
type byteUnit struct {
	name string
	size ByteSize
}

// byteUnits lists the units in the order String prefers them.
func byteUnits() [8]byteUnit {
	return [8]byteUnit{
		{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
		{"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB},
	}
}

// ParseByteSize parses a byte size such as "10MiB", "512 KiB", "1GB" or
// "4096". Negative, fractional and overflowing values are refused with an
// error that wraps ErrBadByteSize and says how to write the value
// (`"1.5MiB": not a byte size (use an integer …, e.g. 1536KiB)`).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	unit := strings.TrimLeft(t[i:], " ")
	mult, ok := unitSize(unit)
	if i == 0 || !ok {
		return 0, fmt.Errorf("%q: %w ("+byteSizeHelp+")", s, ErrBadByteSize, byteSizeExample(t))
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("%q: %w: too large (at most %dTiB)", s, ErrBadByteSize, math.MaxInt64/int64(TiB))
	}
	return ByteSize(n) * mult, nil
}

// byteSizeExample returns the integer spelling of a fractional size
// ("1.5MiB" → "1536KiB"), or "10MiB" when there is none.
func byteSizeExample(t string) string {
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	f, err := strconv.ParseFloat(t[:i], 64)
	mult, ok := unitSize(strings.TrimLeft(t[i:], " "))
	if err != nil || !ok || f <= 0 {
		return "10MiB"
	}
	b := f * float64(mult)
	if b != math.Trunc(b) || b >= 1<<53 {
		return "10MiB"
	}
	if e := ByteSize(b).String(); strings.IndexFunc(e, unicode.IsLetter) >= 0 {
		return e
	}
	return ByteSize(b).String() + "B"
}

// unitSize returns the multiplier of a unit name ("" means bytes).
func unitSize(unit string) (ByteSize, bool) {
	if unit == "" || strings.EqualFold(unit, "B") {
		return B, true
	}
	for _, u := range byteUnits() {
		if strings.EqualFold(unit, u.name) {
			return u.size, true
		}
	}
	return 0, false
}

// String formats b with the largest unit that divides it exactly, binary
// units first ("10MiB", "1GB"), or as a plain integer. ParseByteSize reads
// it back to the same value.
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range byteUnits() {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
