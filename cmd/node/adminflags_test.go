package main

import (
	"bytes"
	"strings"
	"testing"
)

// printTable aligns the header and rows in columns two spaces apart, or
// prints only its empty line when there are no rows.
func TestPrintTable(t *testing.T) {
	row := func(kv [2]string) []string { return kv[:] }
	var b bytes.Buffer
	printTable(&b, "nothing here", []string{"NAME", "VALUE"}, nil, row)
	if got := b.String(); got != "nothing here\n" {
		t.Fatalf("no rows: %q", got)
	}
	b.Reset()
	printTable(&b, "nothing here", []string{"NAME", "VALUE"}, [][2]string{{"a", "1"}, {"longer", "22"}}, row)
	want := strings.Join([]string{
		"NAME    VALUE",
		"a       1",
		"longer  22",
		"",
	}, "\n")
	if got := b.String(); got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
}
