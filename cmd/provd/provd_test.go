package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// TestMain lets a test run provd as a real process (see TestExitStatus).
func TestMain(m *testing.M) {
	if os.Getenv("PROVD_TEST_MAIN") == "1" {
		main()
		return
	}
	code := m.Run()
	trillianHarness.Stop()
	os.Exit(code)
}

// TestServe submits events over HTTP, shuts down with a request in
// flight, and restarts on the same data directory.
func TestServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startProvd(t, data)
	for _, want := range []string{"origin            provtrail.localhost/log", "log key           provtrail.localhost/log+", "operator key      operator+"} {
		if !strings.Contains(s.stdout.String(), want) {
			t.Errorf("start-up output does not say %q:\n%s", want, s.stdout)
		}
	}
	k := newKeys(t, data)
	r := s.submit(k.enroll("maker", provenance.RoleManufacturer))
	if r.Index != 0 || r.Duplicate {
		t.Errorf("first event: %+v", r)
	}
	item := mustItem(t, "SERVE1")
	s.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item,
		Register: &provenance.Register{Product: "Tote"}}))

	// A request in flight when shutdown starts is finished: its body
	// arrives in two parts, the second after the cancel.
	leaf := k.enroll("courier", provenance.RoleCourier)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/events", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("the request in flight failed: %v", err)
			close(answered)
			return
		}
		answered <- resp
	}()
	pw.Write(leaf[:10])
	time.Sleep(200 * time.Millisecond) // the handler is reading the body
	s.stop()
	time.Sleep(200 * time.Millisecond) // shutdown has begun
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Error("provd accepted a new connection after shutdown began")
	}
	select {
	case err := <-s.done:
		t.Fatalf("provd stopped with a request in flight: %v", err)
	default:
	}
	pw.Write(leaf[10:])
	pw.Close()
	resp, ok := <-answered
	if !ok {
		t.FailNow()
	}
	s.checkReceipt(resp, leaf)
	resp.Body.Close()
	if err := s.shutdown(); err != nil {
		t.Fatalf("run returned %v after a graceful shutdown", err)
	}

	// Restart: the data is kept, with the same keys.
	s2 := startProvd(t, data)
	if code, b := s2.get("/api/v1/actors/courier"); code != http.StatusOK {
		t.Errorf("after restart, actor courier: %d %s", code, b)
	}
	code, b := s2.get("/api/v1/items/09506000134352/SERVE1")
	if code != http.StatusOK || !strings.Contains(string(b), `"product":"Tote"`) {
		t.Errorf("after restart, the item: %d %s", code, b)
	}
	if _, cp := s2.get("/checkpoint"); !bytes.Contains(cp, []byte("\n3\n")) {
		t.Errorf("after restart, checkpoint:\n%s", cp)
	}
	if s2.keys != s.keys {
		t.Errorf("the keys changed across a restart: %+v, then %+v", s.keys, s2.keys)
	}
}

// TestDemo runs --demo twice: it prints a history page that answers, and
// the second run adds nothing.
func TestDemo(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startProvd(t, data, "--demo")
	m := regexp.MustCompile(`open the history page of a delivered item: (\S+)`).FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("--demo printed no page:\n%s", s.stdout)
	}
	if !strings.HasPrefix(m[1], s.url+"/01/09506000134352/21/") {
		t.Errorf("demo page %s is not a Digital Link under %s", m[1], s.url)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	page := new(bytes.Buffer)
	page.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page.String(), `data-testid="verdict"`) {
		t.Fatalf("GET %s: %s %s\n%.500s", m[1], resp.Status, resp.Header.Get("Content-Type"), page)
	}
	for serial, status := range map[string]string{
		"DEMO-DELIVERED": "delivered", "DEMO-COURIER": "in custody", "DEMO-TRANSIT": "in transit", "DEMO-DISPUTED": "disputed",
	} {
		_, b := s.get("/api/v1/items/09506000134352/" + serial)
		var v struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(b, &v); v.Status != status {
			t.Errorf("demo item %s is %q, want %q", serial, v.Status, status)
		}
	}
	for _, a := range demoActors {
		info, err := os.Stat(filepath.Join(data, "demo-keys", a.ID+".key"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("demo key of %s: %v, %v", a.ID, info, err)
		}
	}
	_, cp1 := s.get("/checkpoint")
	s.shutdown()

	s = startProvd(t, data, "--demo")
	if _, cp2 := s.get("/checkpoint"); !bytes.Equal(bytes.SplitN(cp1, []byte("\n"), 3)[1], bytes.SplitN(cp2, []byte("\n"), 3)[1]) {
		t.Errorf("a second --demo grew the log:\n%s\n%s", cp1, cp2)
	}
}

// TestBadConfig checks each bad setting fails with a clear error, before
// anything is served.
func TestBadConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	secret := writeSecret(t, "0123456789abcdef0123", 0o600)
	openSecret := writeSecret(t, "0123456789abcdef0123", 0o644)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unwritable data dir", []string{"--data", filepath.Join(file, "data")}, nil, "open data directory"},
		{"base URL not http", []string{"--base-url", "ftp://id.example.com"}, nil, "--base-url \"ftp://id.example.com\": want an http:// or https:// URL"},
		{"base URL with path", []string{"--base-url", "https://id.example.com/shop"}, nil, "has the path"},
		{"base URL no host", []string{"--base-url", "https://"}, nil, "no host"},
		{"listen address", []string{"--addr", "localhost"}, nil, "--addr \"localhost\": want host:port"},
		{"listen port", []string{"--addr", "127.0.0.1:99999"}, nil, "port \"99999\" is not a number"},
		{"listen host", []string{"--addr", "192.0.2.1:0"}, nil, "listen on 192.0.2.1:0"},
		{"webhook not http", []string{"--webhook", "ftp://escrow.example.com/hook", "--webhook-secret-file", secret}, nil, "--webhook \"ftp://escrow.example.com/hook\": want an http:// or https:// URL"},
		{"webhook from env", nil, map[string]string{"PROVD_WEBHOOKS": "mailto:x@example.com"}, "want an http:// or https:// URL"},
		{"webhook without secret", []string{"--webhook", "https://escrow.example.com/hook"}, nil, "needs --webhook-secret-file"},
		{"webhook secret readable", []string{"--webhook", "https://escrow.example.com/hook", "--webhook-secret-file", openSecret}, nil, "want 0600"},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format \"xml\": want json or text"},
		{"stray argument", []string{"serve"}, nil, "unexpected argument"},
		{"bad env duration", nil, map[string]string{"PROVD_SHUTDOWN_TIMEOUT": "soon"}, "PROVD_SHUTDOWN_TIMEOUT"},
		{"no write slots", []string{"--max-inflight-writes", "0"}, nil, "--max-inflight-writes 0: want at least 1"},
		{"negative write queue", []string{"--write-queue", "-1"}, nil, "--write-queue -1: want 0 or more"},
		{"negative queue wait", []string{"--write-queue-wait", "-1s"}, nil, "--write-queue-wait -1s: must be positive"},
		{"negative client rate", []string{"--client-rate", "-5"}, nil, "--client-rate -5: want events per second, 0 or more"},
		{"negative client burst", []string{"--client-rate", "1", "--client-burst", "-1"}, nil, "--client-burst -1: want 0 or more"},
		{"burst without rate", []string{"--client-burst", "5"}, nil, "--client-burst without --client-rate"},
		{"trusted proxy not an address", []string{"--trusted-proxies", "10.0.0.0/8,proxy.local"}, nil, `--trusted-proxies: "proxy.local" is not an IP address or CIDR range`},
		{"bad env rate", nil, map[string]string{"PROVD_CLIENT_RATE": "fast"}, `PROVD_CLIENT_RATE="fast": not a number`},
		{"bad env write slots", nil, map[string]string{"PROVD_MAX_INFLIGHT_WRITES": "-3"}, "--max-inflight-writes -3: want at least 1"},
		{"negative linger", []string{"--log-linger", "-1ms"}, nil, "--log-linger -1ms: want 0 to 1s"},
		{"long linger", []string{"--log-linger", "2s"}, nil, "--log-linger 2s: want 0 to 1s"},
		{"negative gc percent", []string{"--gc-percent", "-1"}, nil, "--gc-percent -1: want a percentage"},
		{"memory limit not a size", []string{"--memory-limit", "lots"}, nil, "--memory-limit: \"lots\" is not a size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0"}, tc.args...)
			getenv := func(k string) string { return tc.env[k] }
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var stdout bytes.Buffer
			err := run(ctx, args, getenv, &stdout, logWriter{t})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run: %v; want an error saying %q", err, tc.want)
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("provd said it was listening:\n%s", stdout.String())
			}
		})
	}
}

// TestExitStatus runs provd as a process: bad config exits 1 with one
// line on stderr.
func TestExitStatus(t *testing.T) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "--addr", "nohost", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "PROVD_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if got := stderr.String(); !strings.HasPrefix(got, "provd: --addr \"nohost\"") || strings.Count(got, "\n") != 1 {
		t.Errorf("stderr: %q", got)
	}
}

// TestEnv checks environment variables configure provd, and flags win.
func TestEnv(t *testing.T) {
	env := map[string]string{"PROVD_ADDR": "127.0.0.1:9999", "PROVD_BASE_URL": "https://id.example.com", "PROVD_WEBHOOKS": "https://a.example.com/h, https://b.example.com/h"}
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:7000"}, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:7000" || cfg.BaseURL != "https://id.example.com" || len(cfg.Webhooks) != 2 {
		t.Errorf("config %+v", cfg)
	}
	cfg, err = parseConfig([]string{"--webhook", "https://c.example.com/h"}, func(k string) string { return env[k] }, nil)
	if err != nil || len(cfg.Webhooks) != 1 || cfg.Webhooks[0] != "https://c.example.com/h" {
		t.Errorf("--webhook does not replace PROVD_WEBHOOKS: %v, %v", cfg.Webhooks, err)
	}

	// The write limits: defaults, the environment, flags winning.
	cfg, err = parseConfig(nil, func(string) string { return "" }, nil)
	if err != nil || cfg.MaxInFlightWrites != 1024 || cfg.WriteQueue != 0 || cfg.WriteQueueWait != time.Second ||
		cfg.ClientRate != 0 || cfg.ClientBurst != 0 || cfg.TrustedProxies != nil {
		t.Errorf("default write limits: %+v, %v", cfg, err)
	}
	env = map[string]string{"PROVD_MAX_INFLIGHT_WRITES": "64", "PROVD_WRITE_QUEUE": "128", "PROVD_WRITE_QUEUE_WAIT": "250ms",
		"PROVD_CLIENT_RATE": "2.5", "PROVD_CLIENT_BURST": "20", "PROVD_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"}
	cfg, err = parseConfig([]string{"--client-rate", "5", "--trusted-proxies", "::1"}, func(k string) string { return env[k] }, nil)
	if err != nil || cfg.MaxInFlightWrites != 64 || cfg.WriteQueue != 128 || cfg.WriteQueueWait != 250*time.Millisecond ||
		cfg.ClientRate != 5 || cfg.ClientBurst != 20 || len(cfg.TrustedProxies) != 1 || cfg.TrustedProxies[0] != "::1" {
		t.Errorf("write limits from the environment and flags: %+v, %v", cfg, err)
	}
	cfg, _ = parseConfig(nil, func(k string) string { return env[k] }, nil)
	if len(cfg.TrustedProxies) != 2 || cfg.TrustedProxies[1] != "192.0.2.7" {
		t.Errorf("PROVD_TRUSTED_PROXIES: %q", cfg.TrustedProxies)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// A defaultCase is a setting's expected value for some flags and
// environment.
type defaultCase struct {
	args []string
	env  map[string]string
	want int
}

// checkDefaults parses each case's flags and environment and compares the
// setting get reads with the case's want.
func checkDefaults(t *testing.T, flag string, get func(Config) int, cases []defaultCase) {
	t.Helper()
	for _, tc := range cases {
		cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := get(cfg); got != tc.want {
			t.Errorf("args %q, env %v: %s %d, want %d", tc.args, tc.env, flag, got, tc.want)
		}
	}
}

// TestGCPercentDefault: provd sets the collector's target to 400 unless
// GOGC says otherwise, and a flag or PROVD_GC_PERCENT wins over both.
func TestGCPercentDefault(t *testing.T) {
	checkDefaults(t, "--gc-percent", func(c Config) int { return c.GCPercent }, []defaultCase{
		{nil, nil, defaultGCPercent},
		{nil, map[string]string{"GOGC": "100"}, 0},
		{[]string{"--gc-percent", "200"}, map[string]string{"GOGC": "100"}, 200},
		{nil, map[string]string{"PROVD_GC_PERCENT": "150"}, 150},
	})
}

// TestMemoryLimit: provd sets the runtime's soft memory limit to half the
// memory it may use (the machine's, or its cgroup's if lower) unless
// GOMEMLIMIT is set, and a flag or PROVD_MEMORY_LIMIT wins over both; a
// size that is not one is refused, naming the flag.
func TestMemoryLimit(t *testing.T) {
	meminfo := "MemTotal:       24576000 kB\nMemFree:         1000 kB\n"
	files := func(cgroup string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			switch {
			case name == "/proc/meminfo":
				return []byte(meminfo), nil
			case name == "/sys/fs/cgroup/memory.max" && cgroup != "":
				return []byte(cgroup + "\n"), nil
			}
			return nil, os.ErrNotExist
		}
	}
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		env    func(string) string
		cgroup string
		want   int64
	}{
		{noEnv, "", 24576000 << 10 / 2},
		{noEnv, "max", 24576000 << 10 / 2},
		{noEnv, "1073741824", 512 << 20},
		{func(k string) string { return map[string]string{"GOMEMLIMIT": "1GiB"}[k] }, "", 0},
	} {
		if got := defaultMemoryLimit(tc.env, files(tc.cgroup)); got != tc.want {
			t.Errorf("cgroup %q: default limit %d, want %d", tc.cgroup, got, tc.want)
		}
	}
	if got := defaultMemoryLimit(noEnv, func(string) ([]byte, error) { return nil, os.ErrNotExist }); got != 0 {
		t.Errorf("no memory figures: default limit %d, want 0 (the runtime's)", got)
	}

	env := map[string]string{"PROVD_MEMORY_LIMIT": "2GiB"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want int64
	}{
		{[]string{"--memory-limit", "768MiB"}, nil, 768 << 20},
		{[]string{"--memory-limit", "0"}, env, 0},
		{nil, env, 2 << 30},
		{[]string{"--memory-limit", "1073741824"}, nil, 1 << 30},
	} {
		cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil || cfg.MemoryLimit != tc.want {
			t.Errorf("args %q, env %v: limit %d, %v; want %d", tc.args, tc.env, cfg.MemoryLimit, err, tc.want)
		}
	}
	for _, bad := range []string{"lots", "1.5GiB", "-1", "12GB", "99999999999TiB"} {
		if _, err := parseConfig([]string{"--memory-limit", bad}, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("--memory-limit %s: %v, want an error naming the flag", bad, err)
		}
	}
}
