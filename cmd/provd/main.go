// Command provd serves a provtrail log over HTTP: the JSON API, the GS1
// Digital Link resolver and history pages, QR codes, and the checkpoint
// and keys that verifiers pin.
//
// It serves one data directory (--data, made on first start with fresh log
// and operator keys). The log is embedded in it (--log bolt), or is a tree
// of a Trillian log server that several provd replicas share (--log
// trillian --trillian-addr host:port --trillian-tree ID; see
// docs/scale-out.md). The index is in the data directory too (--index
// bolt), or in a MySQL or MariaDB database that replicas share (--index
// mysql://user:password@tcp(host:3306)/dbname). provd prints the listening URL, the origin and the
// verifier keys, and stops gracefully on SIGINT or SIGTERM. --demo fills
// the log with demo actors and items and prints a history page to open.
// Every flag has an environment variable (PROVD_ADDR for --addr, ...);
// flags win. Run "provd --help" for the list. Past capacity
// (--max-inflight-writes, --write-queue, --write-queue-wait) a write gets
// 503 with Retry-After, and past --client-rate a client's writes get 429;
// reads are always served (docs/api.md). --mirror URL follows another
// provd's log read-only, verifying everything, and serves its pages
// (docs/mirror.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/provtrail/provtrail/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "provd: %v\n", err)
		os.Exit(1)
	}
}

// run runs provd until ctx ends. getenv reads the environment (os.Getenv).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return serve(ctx, cfg, newLogger(cfg.LogFormat, stderr), stdout)
}

// Config is provd's configuration, from flags and the environment.
type Config struct {
	Addr    string // listen address, host:port
	DataDir string
	// BaseURL is the public base of the Digital Links that QR codes carry;
	// "" means http://ADDR.
	BaseURL string
	Origin  string // the log's origin, for a new data directory
	Demo    bool
	// Webhooks are the URLs told of deliveries and disputes, signed with
	// the secret in WebhookSecretFile (mode 0600).
	Webhooks          []string
	WebhookSecretFile string
	WebhookAttempts   int
	WebhookBackoff    time.Duration
	LogFormat         string // "json" or "text"
	ShutdownTimeout   time.Duration
	// Log is the log backend: "bolt" (the embedded log in the data
	// directory) or "trillian" (a tree of a Trillian log server, shared
	// by replicas).
	Log          string
	TrillianAddr string // trillian_log_server's gRPC address, host:port
	TrillianTree int64  // the Trillian tree ID
	// Index is where the index lives: "bolt" (in the data directory's
	// provtrail.db) or "mysql://" and a DSN (a MySQL or MariaDB database
	// shared by replicas).
	Index string
	// PollInterval is how often the log is read for leaves other replicas
	// appended.
	PollInterval time.Duration
	// SaveInterval is how often the index is saved under writes: at most
	// that much of the log is replayed after a crash.
	SaveInterval time.Duration
	// WitnessPolicy is a C2SP tlog-policy file naming witnesses (with
	// their submission URLs) and a quorum; checkpoints are published only
	// with their cosignatures.
	WitnessPolicy string
	// Mirror is the base URL of a provd whose log this one follows and
	// serves read-only; "" serves a log of its own.
	Mirror string
	// MirrorPolicy is a trust policy file pinning the mirrored log's
	// keys; "" pins what the origin serves on the first start.
	MirrorPolicy string

	// Write admission (web.WriteLimits): at most MaxInFlightWrites event
	// submissions at once, WriteQueue more waiting up to WriteQueueWait
	// (0: as many as MaxInFlightWrites), and ClientRate events/s per
	// client with bursts of ClientBurst (ClientRate 0: no limit per
	// client; ClientBurst 0: one second's worth).
	MaxInFlightWrites int
	WriteQueue        int
	WriteQueueWait    time.Duration
	ClientRate        float64
	ClientBurst       int
	// TrustedProxies are the addresses and CIDR ranges of the reverse
	// proxies whose X-Forwarded-For names the client; none by default.
	TrustedProxies []string

	// LogLinger is how long the embedded log's commit may wait for more
	// appends under concurrent writes (boltlog.Config.MaxWait).
	LogLinger time.Duration
	// GCPercent is the Go garbage collector's target (debug.SetGCPercent);
	// 0 leaves the runtime's, which GOGC sets.
	GCPercent int
	// MemoryLimit is the Go runtime's soft memory limit, in bytes
	// (debug.SetMemoryLimit); 0 leaves the runtime's, which GOMEMLIMIT
	// sets.
	MemoryLimit int64
}

// defaultGCPercent is --gc-percent's default: provd allocates fast and
// keeps little under write load, so a collection every time the heap
// doubles costs more CPU than the memory it saves; the memory limit
// (--memory-limit) bounds the heap whatever the target.
const defaultGCPercent = 400

// parseConfig reads args, with defaults from the environment.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("provd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var envErr error
	envDuration := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil && envErr == nil {
			envErr = fmt.Errorf("%s=%q: not a duration like 10s", name, v)
		}
		return d
	}
	envInt := func(name string, def int) int {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil && envErr == nil {
			envErr = fmt.Errorf("%s=%q: not a number", name, v)
		}
		return n
	}
	fs.StringVar(&cfg.Addr, "addr", env("PROVD_ADDR", "127.0.0.1:8080"), "listen `address` (PROVD_ADDR)")
	fs.StringVar(&cfg.DataDir, "data", env("PROVD_DATA", "data"), "the data `directory`, made on first start (PROVD_DATA)")
	fs.StringVar(&cfg.BaseURL, "base-url", env("PROVD_BASE_URL", ""), "the public base `URL` QR codes carry, e.g. https://id.example.com (PROVD_BASE_URL; default http://ADDR)")
	fs.StringVar(&cfg.Origin, "origin", env("PROVD_ORIGIN", ""), "the log's `origin`, for a new data directory (PROVD_ORIGIN; default provtrail.localhost/log)")
	demo, _ := strconv.ParseBool(env("PROVD_DEMO", "false"))
	fs.BoolVar(&cfg.Demo, "demo", demo, "enroll demo actors and register demo items, then print a history page to open (PROVD_DEMO)")
	if v := getenv("PROVD_WEBHOOKS"); v != "" {
		cfg.Webhooks = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	}
	fromEnv := true
	fs.Func("webhook", "a `URL` told of deliveries and disputes; repeatable (PROVD_WEBHOOKS, comma-separated)", func(s string) error {
		if fromEnv {
			cfg.Webhooks, fromEnv = nil, false
		}
		cfg.Webhooks = append(cfg.Webhooks, s)
		return nil
	})
	fs.StringVar(&cfg.WebhookSecretFile, "webhook-secret-file", env("PROVD_WEBHOOK_SECRET_FILE", ""), "the `file` (mode 0600) holding the webhooks' HMAC secret (PROVD_WEBHOOK_SECRET_FILE)")
	fs.IntVar(&cfg.WebhookAttempts, "webhook-attempts", envInt("PROVD_WEBHOOK_ATTEMPTS", 6), "tries per webhook delivery (PROVD_WEBHOOK_ATTEMPTS)")
	fs.DurationVar(&cfg.WebhookBackoff, "webhook-backoff", envDuration("PROVD_WEBHOOK_BACKOFF", 2*time.Second), "wait before the first webhook retry, doubling after (PROVD_WEBHOOK_BACKOFF)")
	envFloat := func(name string) float64 {
		v := getenv(name)
		if v == "" {
			return 0
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil && envErr == nil {
			envErr = fmt.Errorf("%s=%q: not a number", name, v)
		}
		return f
	}
	var trustedProxies string
	envInt64 := func(name string) int64 {
		v := getenv(name)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil && envErr == nil {
			envErr = fmt.Errorf("%s=%q: not a number", name, v)
		}
		return n
	}
	fs.StringVar(&cfg.Log, "log", env("PROVD_LOG", "bolt"), "the log `backend`: bolt (embedded in the data directory) or trillian (a Trillian tree shared by replicas) (PROVD_LOG)")
	fs.StringVar(&cfg.TrillianAddr, "trillian-addr", env("PROVD_TRILLIAN_ADDR", ""), "with --log trillian: the gRPC `address` of trillian_log_server, host:port (PROVD_TRILLIAN_ADDR)")
	fs.Int64Var(&cfg.TrillianTree, "trillian-tree", envInt64("PROVD_TRILLIAN_TREE"), "with --log trillian: the `ID` of the LOG tree, as createtree printed it (PROVD_TRILLIAN_TREE)")
	fs.StringVar(&cfg.Index, "index", env("PROVD_INDEX", "bolt"), "where the `index` lives: bolt (in the data directory) or mysql://user:password@tcp(host:3306)/dbname, a MySQL or MariaDB database replicas share; the database must exist (PROVD_INDEX, which keeps the password out of ps; docs/scale-out.md)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", envDuration("PROVD_POLL_INTERVAL", time.Second), "how often the log is read for events other replicas appended (PROVD_POLL_INTERVAL)")
	fs.DurationVar(&cfg.SaveInterval, "save-interval", envDuration("PROVD_SAVE_INTERVAL", time.Second), "how often the index is saved under writes; a crash replays what was applied since from the log (PROVD_SAVE_INTERVAL)")
	fs.StringVar(&cfg.WitnessPolicy, "witness-policy", env("PROVD_WITNESS_POLICY", ""), "a C2SP tlog-policy `file` naming witnesses with their URLs and a quorum: publish only checkpoints they cosigned (PROVD_WITNESS_POLICY)")
	fs.StringVar(&cfg.Mirror, "mirror", env("PROVD_MIRROR", ""), "follow the provd at `URL` read-only: verify its checkpoints, tiles and entries, and serve its pages (PROVD_MIRROR; docs/mirror.md)")
	fs.StringVar(&cfg.MirrorPolicy, "mirror-policy", env("PROVD_MIRROR_POLICY", ""), "with --mirror: a trust policy `file` (prov keys --out) pinning the origin's keys; default: pin what it serves on the first start (PROVD_MIRROR_POLICY)")
	fs.IntVar(&cfg.MaxInFlightWrites, "max-inflight-writes", envInt("PROVD_MAX_INFLIGHT_WRITES", web.DefaultMaxInFlight), "how many event `submissions` are checked and appended at once (PROVD_MAX_INFLIGHT_WRITES)")
	fs.IntVar(&cfg.WriteQueue, "write-queue", envInt("PROVD_WRITE_QUEUE", 0), "how many more `submissions` may wait for a slot; past that they get 503 with Retry-After (PROVD_WRITE_QUEUE; default 0: as many as --max-inflight-writes)")
	fs.DurationVar(&cfg.WriteQueueWait, "write-queue-wait", envDuration("PROVD_WRITE_QUEUE_WAIT", web.DefaultQueueWait), "how long a submission waits for a slot before it gets 503 with Retry-After (PROVD_WRITE_QUEUE_WAIT)")
	fs.Float64Var(&cfg.ClientRate, "client-rate", envFloat("PROVD_CLIENT_RATE"), "`events` per second one client (IPv4 address or IPv6 /64) may send; past that it gets 429 with Retry-After (PROVD_CLIENT_RATE; default 0: no limit per client)")
	fs.IntVar(&cfg.ClientBurst, "client-burst", envInt("PROVD_CLIENT_BURST", 0), "with --client-rate: how many `events` a client may send at once (PROVD_CLIENT_BURST; default 0: one second's worth)")
	fs.StringVar(&trustedProxies, "trusted-proxies", env("PROVD_TRUSTED_PROXIES", ""), "comma-separated `addresses` or CIDR ranges of the reverse proxies whose X-Forwarded-For names the client (PROVD_TRUSTED_PROXIES; default none: the client is the connection's address)")
	fs.DurationVar(&cfg.LogLinger, "log-linger", envDuration("PROVD_LOG_LINGER", 2*time.Millisecond), "with --log bolt: how long a commit may wait for more events under concurrent writes; fewer, larger commits leave more CPU for signature checks, a lone writer never waits (PROVD_LOG_LINGER; 0 commits at once)")
	gcDefault := defaultGCPercent
	if getenv("GOGC") != "" {
		gcDefault = 0
	}
	fs.IntVar(&cfg.GCPercent, "gc-percent", envInt("PROVD_GC_PERCENT", gcDefault), "the Go collector's `target`, in percent of live data (PROVD_GC_PERCENT; default 400 unless GOGC is set; 0 leaves GOGC's)")
	memoryLimit := fs.String("memory-limit", env("PROVD_MEMORY_LIMIT", ""), "the Go runtime's soft memory `limit`, as GOMEMLIMIT writes it (e.g. 768MiB); the collector works harder as the heap nears it (PROVD_MEMORY_LIMIT; default half the machine's or the cgroup's memory, unless GOMEMLIMIT is set; 0 leaves the runtime's)")
	fs.StringVar(&cfg.LogFormat, "log-format", env("PROVD_LOG_FORMAT", "json"), "log `format` on stderr: json or text (PROVD_LOG_FORMAT)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", envDuration("PROVD_SHUTDOWN_TIMEOUT", 15*time.Second), "how long requests in flight may take to finish at shutdown (PROVD_SHUTDOWN_TIMEOUT)")
	if envErr != nil {
		return Config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(usage, "Usage: provd [flags]\n\nprovd serves a provtrail log: the JSON API, history pages, QR codes, checkpoints.\nFlags win over the environment variables named in parentheses.\n\nFlags:\n")
			fs.SetOutput(usage)
			fs.PrintDefaults()
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%v (run provd --help)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: every input is a flag (run provd --help)", fs.Arg(0))
	}
	if *memoryLimit == "" {
		cfg.MemoryLimit = defaultMemoryLimit(getenv, os.ReadFile)
	} else {
		limit, err := parseBytes(*memoryLimit)
		if err != nil {
			return Config{}, fmt.Errorf("--memory-limit: %v (run provd --help)", err)
		}
		cfg.MemoryLimit = limit
	}
	if trustedProxies != "" {
		cfg.TrustedProxies = strings.FieldsFunc(trustedProxies, func(r rune) bool { return r == ',' || r == ' ' })
	}
	return cfg, nil
}

// Validate checks cfg, saying what is wrong with which setting.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:8080", c.Addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("--addr %q: port %q is not a number from 0 to 65535", c.Addr, port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("--addr %q: %q is not a host name or IP address", c.Addr, host)
	}
	if c.DataDir == "" {
		return errors.New("--data: no data directory")
	}
	if c.BaseURL != "" {
		if err := checkBaseURL(c.BaseURL); err != nil {
			return fmt.Errorf("--base-url %q: %w", c.BaseURL, err)
		}
	}
	if strings.ContainsAny(c.Origin, " +\n\t") {
		return fmt.Errorf("--origin %q: must not contain spaces or '+'", c.Origin)
	}
	for _, u := range c.Webhooks {
		if err := checkHTTPURL(u); err != nil {
			return fmt.Errorf("--webhook %q: %w", u, err)
		}
	}
	switch {
	case len(c.Webhooks) > 0 && c.WebhookSecretFile == "":
		return errors.New("--webhook needs --webhook-secret-file: receivers check each body's HMAC with the secret")
	case len(c.Webhooks) == 0 && c.WebhookSecretFile != "":
		return errors.New("--webhook-secret-file without any --webhook")
	case c.WebhookAttempts < 1 || c.WebhookAttempts > 100:
		return fmt.Errorf("--webhook-attempts %d: want 1 to 100", c.WebhookAttempts)
	case c.WebhookBackoff <= 0:
		return fmt.Errorf("--webhook-backoff %v: must be positive", c.WebhookBackoff)
	case c.LogFormat != "json" && c.LogFormat != "text":
		return fmt.Errorf("--log-format %q: want json or text", c.LogFormat)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("--shutdown-timeout %v: must be positive", c.ShutdownTimeout)
	case c.PollInterval <= 0:
		return fmt.Errorf("--poll-interval %v: must be positive", c.PollInterval)
	case c.SaveInterval <= 0:
		return fmt.Errorf("--save-interval %v: must be positive", c.SaveInterval)
	}
	switch {
	case c.LogLinger < 0 || c.LogLinger > time.Second:
		return fmt.Errorf("--log-linger %v: want 0 to 1s", c.LogLinger)
	case c.GCPercent < 0:
		return fmt.Errorf("--gc-percent %d: want a percentage, or 0 to leave GOGC's", c.GCPercent)
	}
	if err := c.validateWrites(); err != nil {
		return err
	}
	if _, err := indexDSN(c.Index); err != nil {
		return err
	}
	if err := c.validateMirror(); err != nil {
		return err
	}
	return c.validateLog()
}

// validateMirror checks --mirror and what a mirror cannot be given with
// it: it signs nothing and keeps its log and index in its data directory.
func (c Config) validateMirror() error {
	if c.Mirror == "" {
		if c.MirrorPolicy != "" {
			return errors.New("--mirror-policy without --mirror")
		}
		return nil
	}
	if err := checkHTTPURL(c.Mirror); err != nil {
		return fmt.Errorf("--mirror %q: %w", c.Mirror, err)
	}
	switch {
	case c.Demo:
		return errors.New("--demo with --mirror: a mirror writes nothing; run the demo on the origin")
	case len(c.Webhooks) > 0:
		return errors.New("--webhook with --mirror: the origin sends the webhooks; a mirror sends none")
	case c.Log != "bolt" || c.Index != "bolt":
		return errors.New("--log and --index with --mirror: a mirror keeps its copy of the log and its index in its data directory")
	case c.Origin != "":
		return errors.New("--origin with --mirror: a mirror serves the origin's log, named by the origin's key")
	case c.WitnessPolicy != "":
		return errors.New("--witness-policy with --mirror: name the witnesses in --mirror-policy, which the origin's checkpoints must then meet")
	}
	return nil
}

// validateWrites checks the write admission settings.
func (c Config) validateWrites() error {
	switch {
	case c.MaxInFlightWrites < 1:
		return fmt.Errorf("--max-inflight-writes %d: want at least 1", c.MaxInFlightWrites)
	case c.WriteQueue < 0:
		return fmt.Errorf("--write-queue %d: want 0 or more (0: as many as --max-inflight-writes)", c.WriteQueue)
	case c.WriteQueueWait <= 0:
		return fmt.Errorf("--write-queue-wait %v: must be positive", c.WriteQueueWait)
	case c.ClientRate < 0 || math.IsNaN(c.ClientRate) || math.IsInf(c.ClientRate, 0):
		return fmt.Errorf("--client-rate %v: want events per second, 0 or more (0: no limit per client)", c.ClientRate)
	case c.ClientBurst < 0:
		return fmt.Errorf("--client-burst %d: want 0 or more (0: one second's worth of --client-rate)", c.ClientBurst)
	case c.ClientBurst > 0 && c.ClientRate == 0:
		return errors.New("--client-burst without --client-rate: there is no limit per client to burst above")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			return fmt.Errorf("--trusted-proxies: %q is not an IP address or CIDR range like 10.0.0.0/8", p)
		}
	}
	return nil
}

// writeLimits are the web layer's write limits for c.
func (c Config) writeLimits() web.WriteLimits {
	return web.WriteLimits{MaxInFlight: c.MaxInFlightWrites, MaxQueued: c.WriteQueue, QueueWait: c.WriteQueueWait,
		ClientRate: c.ClientRate, ClientBurst: c.ClientBurst}
}

// validateLog checks the log backend's settings.
func (c Config) validateLog() error {
	switch c.Log {
	case "bolt":
		if c.TrillianAddr != "" || c.TrillianTree != 0 {
			return errors.New("--trillian-addr and --trillian-tree need --log trillian")
		}
		return nil
	case "trillian":
	default:
		return fmt.Errorf("--log %q: want bolt or trillian", c.Log)
	}
	if c.TrillianAddr == "" {
		return errors.New("--log trillian needs --trillian-addr, the gRPC address of trillian_log_server")
	}
	if _, port, err := net.SplitHostPort(c.TrillianAddr); err != nil || port == "" {
		return fmt.Errorf("--trillian-addr %q: want host:port, e.g. 127.0.0.1:8090", c.TrillianAddr)
	}
	if c.TrillianTree <= 0 {
		return fmt.Errorf("--log trillian needs --trillian-tree, the ID of a LOG tree (createtree --tree_type=LOG prints it); have %d", c.TrillianTree)
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an http:// or https:// URL")
	case u.Host == "":
		return errors.New("no host")
	}
	return nil
}

// checkBaseURL checks a public base URL: http(s), a host, no path.
func checkBaseURL(s string) error {
	if err := checkHTTPURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	switch {
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("has the path %q; Digital Links sit at the root (https://host/01/...)", u.Path)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return errors.New("want just scheme and host, e.g. https://id.example.com")
	}
	return nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}
