package config

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"1024", KiB},
		{"10MiB", 10 * MiB},
		{"512KiB", 512 * KiB},
		{"512 KiB", 512 * KiB},
		{" 1GB ", GB},
		{"1gb", GB},
		{"3TiB", 3 * TiB},
		{"2TB", 2 * TB},
		{"7B", 7},
		{"5kb", 5000},
		{"9223372036854775807", math.MaxInt64},
		{"8388607TiB", 8388607 * TiB},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseByteSizeErrors(t *testing.T) {
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "10XB", "10 M", "10MiBs", "0x10",
		"9223372036854775808", "8388608TiB", "1_000", "+5", "5 5"} {
		t.Run(in, func(t *testing.T) {
			if v, err := ParseByteSize(in); !errors.Is(err, ErrBadByteSize) {
				t.Errorf("ParseByteSize(%q) = %d, %v; want ErrBadByteSize", in, v, err)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{KiB, "1KiB"},
		{10 * MiB, "10MiB"},
		{GB, "1GB"},
		{1500 * KB, "1500KB"},
		{1536 * KiB, "1536KiB"},
		{TiB, "1TiB"},
		{-5, "-5"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	var b ByteSize
	if err := b.UnmarshalText([]byte("2MiB")); err != nil || b != 2*MiB {
		t.Fatalf("UnmarshalText = %d, %v", b, err)
	}
	if err := b.UnmarshalText([]byte("lots")); err == nil || b != 2*MiB {
		t.Fatalf("UnmarshalText(lots) = %v and changed the value to %d", err, b)
	}
	out, _ := b.MarshalText()
	if string(out) != "2MiB" {
		t.Errorf("MarshalText = %q", out)
	}
}

// FuzzParseByteSize checks that ParseByteSize never panics, never returns a
// negative size, and that every size it returns survives String and a
// second parse unchanged.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"10MiB", "512 KiB", "1GB", "4096", "0", "-1", "1.5GiB", "9223372036854775807", "8388608TiB", "kib"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			if !errors.Is(err, ErrBadByteSize) {
				t.Fatalf("error %v does not wrap ErrBadByteSize", err)
			}
			return
		}
		if v < 0 {
			t.Fatalf("ParseByteSize(%q) = %d < 0", s, v)
		}
		str := v.String()
		again, err := ParseByteSize(str)
		if err != nil || again != v {
			t.Fatalf("round trip %q → %d → %q → %d, %v", s, v, str, again, err)
		}
		if plain, err := ParseByteSize(strconv.FormatInt(int64(v), 10)); err != nil || plain != v {
			t.Fatalf("plain integer %d does not parse back: %d, %v", v, plain, err)
		}
	})
}

func BenchmarkParseByteSize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseByteSize("512KiB"); err != nil {
			b.Fatal(err)
		}
	}
}

// A malformed size is explained in user words with an integer spelling of
// what was meant, never as a wrong unit.
func TestParseByteSizeMessages(t *testing.T) {
	for in, want := range map[string]string{
		"1.5MiB":     `"1.5MiB": not a byte size (use an integer with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. 1536KiB)`,
		"0.5 GB":     `"0.5 GB": not a byte size (use an integer with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. 500MB)`,
		"10XB":       `"10XB": not a byte size (use an integer with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. 10MiB)`,
		"-1":         `"-1": not a byte size (use an integer with an optional unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. 10MiB)`,
		"8388608TiB": `"8388608TiB": not a byte size: too large (at most 8388607TiB)`,
	} {
		if _, err := ParseByteSize(in); err == nil || err.Error() != want {
			t.Errorf("ParseByteSize(%q) error\n got %v\nwant %s", in, err, want)
		}
	}
}
