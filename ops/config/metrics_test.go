package config

import (
	"strings"
	"testing"
)

func TestMetricsListen(t *testing.T) {
	if DefaultConfig().Metrics.Listen != "" {
		t.Fatal("the ops listener is on by default; nothing may listen in plaintext by default")
	}
	cfg, err := Load(LoadOptions{Env: []string{"CHIMALLI_METRICS__LISTEN=127.0.0.1:9464"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.Listen != "127.0.0.1:9464" {
		t.Errorf("metrics.listen = %q from CHIMALLI_METRICS__LISTEN", cfg.Metrics.Listen)
	}
	for _, tt := range []struct{ listen, want string }{
		{"9464", `metrics.listen: "9464" is not host:port`},
		{DefaultListen, "metrics.listen: " + DefaultListen + " is also gateway.listen"},
	} {
		c := DefaultConfig()
		c.Metrics.Listen = tt.listen
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("metrics.listen %q: Validate() = %v, want %q", tt.listen, err, tt.want)
		}
	}
	c := DefaultConfig()
	c.Metrics.Listen = "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Errorf("metrics.listen on a free port: %v", err)
	}
}
