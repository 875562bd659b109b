package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantDebug, wantInfo bool
		wantJSON            bool
	}{
		{"defaults", "", "", false, false, true},
		{"error json", "error", "json", false, false, true},
		{"info text", "info", "text", false, true, false},
		{"debug", "DEBUG", "json", true, true, true},
		{"warning alias", "warning", "text", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := NewLogger(tt.level, tt.format, &buf)
			if err != nil {
				t.Fatal(err)
			}
			l.Debug("d")
			l.Info("i")
			l.Error("e", "k", "v")
			out := buf.String()
			if strings.Contains(out, "msg=d") || strings.Contains(out, `"msg":"d"`) {
				if !tt.wantDebug {
					t.Errorf("debug written at level %q", tt.level)
				}
			} else if tt.wantDebug {
				t.Errorf("debug missing at level %q", tt.level)
			}
			hasInfo := strings.Contains(out, "msg=i") || strings.Contains(out, `"msg":"i"`)
			if hasInfo != tt.wantInfo {
				t.Errorf("info written = %v, want %v", hasInfo, tt.wantInfo)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			var m map[string]any
			isJSON := json.Unmarshal([]byte(last), &m) == nil
			if isJSON != tt.wantJSON {
				t.Errorf("line %q: JSON = %v, want %v", last, isJSON, tt.wantJSON)
			}
			if !strings.Contains(last, "e") || !strings.Contains(last, "k") {
				t.Errorf("error line %q lost its message or attribute", last)
			}
		})
	}
}

func TestNewLoggerErrors(t *testing.T) {
	if _, err := NewLogger("chatty", "json", nil); err == nil || !strings.Contains(err.Error(), `unknown log level "chatty"`) {
		t.Errorf("bad level: %v", err)
	}
	if _, err := NewLogger("info", "yaml", nil); err == nil || !strings.Contains(err.Error(), `unknown log format "yaml"`) {
		t.Errorf("bad format: %v", err)
	}
	if l, err := NewLogger("", "", nil); err != nil || l == nil {
		t.Errorf("nil writer: %v", err)
	}
}
