// Package web serves provtrail over HTTP with gin: the JSON API, the GS1
// Digital Link resolver, the pages, QR images, and the log's checkpoint.
//
// The handlers depend on the small [Service] interface, not on a concrete
// service; cmd/provd wires the real one in.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/assets"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// Service is what the web layer needs from the domain
// (*provenance.Service implements it).
type Service interface {
	Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error)
	SubmitBatch(ctx context.Context, leaves [][]byte, workers int, admit func(context.Context) (func(), error)) []provenance.BatchResult
	Item(ctx context.Context, id provenance.ItemID) (provenance.ItemView, error)
	Bundle(ctx context.Context, id provenance.ItemID) ([]byte, error)
	Actor(ctx context.Context, id string) (provenance.ActorState, error)
	ActorEvents(ctx context.Context, id string) ([]provenance.HistoryEvent, error)
	Trust() provenance.Trust
}

// A ScanCounter counts how often each item's code was opened, outside the
// log.
type ScanCounter interface {
	// Scan records one more scan of id and returns the count, this one
	// included.
	Scan(ctx context.Context, id provenance.ItemID) (uint64, error)
}

// Config carries everything the web layer needs.
type Config struct {
	Service Service
	// Log is read for /checkpoint and the C2SP tiles.
	Log merkle.Log
	// Scans counts page opens per item; nil counts nothing.
	Scans ScanCounter
	// BaseURL is the public base of the Digital Links that QR codes carry,
	// e.g. "https://id.example.com", with no trailing slash.
	BaseURL string
	Logger  *slog.Logger
	// Writes bound the event submissions taken on at once and per client
	// (limit.go); the zero value takes the defaults, with no limit per
	// client.
	Writes WriteLimits
	// TrustedProxies are the IP addresses and CIDR ranges of the reverse
	// proxies in front of the server, whose X-Forwarded-For (or
	// X-Real-IP) names the client. nil trusts none: a client is the
	// address the connection came from, whatever headers it sends.
	TrustedProxies []string
	// Mirror, if set, makes the server a read-only mirror of another
	// server's log (mirror.go): every write is refused, and every page
	// says whose log it shows.
	Mirror *Mirror
}

// A Server is the HTTP handler of provd.
type Server struct {
	cfg     Config
	engine  *gin.Engine
	log     *slog.Logger
	metrics *metrics
	assets  *assetServer
	now     func() time.Time
	opID    string        // the operator's actor id: the name of its key
	bufs    bufferPool    // buffers pages are rendered into
	admit   *admission    // the slots event submissions run in
	clients *clientLimits // per-client rate limits; nil for none
}

// New returns the handler for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Log == nil {
		return nil, errors.New("web: config needs a service and a log")
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("web: config needs the public base URL")
	}
	if m := cfg.Mirror; m != nil && (m.URL == "" || m.Stopped == nil) {
		return nil, errors.New("web: a mirror needs its origin's URL and a Stopped function")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("web: base URL %q must be http(s)://host with no path", cfg.BaseURL)
	}
	assets, err := newAssetServer(assets.FS)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	op, err := note.NewVerifier(cfg.Service.Trust().OperatorKey)
	if err != nil {
		return nil, fmt.Errorf("web: operator key: %w", err)
	}
	writes, err := cfg.Writes.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("web: write limits: %w", err)
	}
	cfg.Writes = writes
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	// gin trusts every proxy unless told otherwise, so that any client
	// could name itself in X-Forwarded-For and dodge its rate limit.
	if err := engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("web: trusted proxies: %w", err)
	}
	s := &Server{cfg: cfg, engine: engine, log: cfg.Logger, metrics: newMetrics(), assets: assets, now: time.Now, opID: op.Name(),
		admit: newAdmission(writes), clients: newClientLimits(writes)}
	if cfg.Mirror != nil {
		s.metrics.mirror(cfg.Mirror, cfg.Log)
	}
	s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.engine.ServeHTTP(w, r)
}
