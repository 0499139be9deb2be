package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/01/09506000134352/21/ABC" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		w.Write([]byte("<html>page</html>"))
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(t.Context(), []string{"-url", srv.URL, "-item", "/01/09506000134352/21/ABC", "-concurrency", "3", "-duration", "200ms"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	for _, want := range []string{"3 workers", "0 failed", "requests/s", "p50 ", "p99 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, &out)
		}
	}
	if hits.Load() == 0 {
		t.Error("the server saw no request")
	}

	out.Reset()
	err = run(t.Context(), []string{"-url", srv.URL, "-item", "/01/09506000134352/21/NOPE", "-duration", "50ms"}, &out)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("run on a missing page: err = %v, want one naming the 404\n%s", err, &out)
	}
}

func TestValidate(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:8080", Item: "/01/09506000134352/21/ABC", Concurrency: 1, Duration: time.Second, Timeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"no item":          func(c *Config) { c.Item = "" },
		"relative item":    func(c *Config) { c.Item = "01/x" },
		"bad url":          func(c *Config) { c.URL = "127.0.0.1:8080" },
		"zero concurrency": func(c *Config) { c.Concurrency = 0 },
		"zero duration":    func(c *Config) { c.Duration = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			change(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil, want an error", c)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	r := Result{}
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 51 * time.Millisecond}, {0.99, 100 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := r.Percentile(tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}
