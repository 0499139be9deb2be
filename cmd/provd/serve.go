package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/cmd/internal/webhook"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"github.com/provtrail/provtrail/web"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sync/errgroup"
)

// serve wires the data directory, the web handler, the scan counter and
// the webhooks together, serves until ctx ends, then shuts down: no new
// connections, requests in flight finish (up to cfg.ShutdownTimeout), and
// the Service, log and database are closed.
func serve(ctx context.Context, cfg Config, logger *slog.Logger, stdout io.Writer) (err error) {
	var secret []byte
	if len(cfg.Webhooks) > 0 {
		if secret, err = readSecret(cfg.WebhookSecretFile); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	if cfg.GCPercent > 0 {
		defer debug.SetGCPercent(debug.SetGCPercent(cfg.GCPercent))
	}
	if cfg.MemoryLimit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(cfg.MemoryLimit))
	}
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	if base == "" {
		base = "http://" + ln.Addr().String()
	}

	var witnesses *merkle.Policy
	if cfg.WitnessPolicy != "" {
		b, err := os.ReadFile(cfg.WitnessPolicy)
		if err != nil {
			return fmt.Errorf("--witness-policy: %w", err)
		}
		p, err := merkle.ParsePolicy(b)
		if err != nil {
			return fmt.Errorf("--witness-policy %s: %w", cfg.WitnessPolicy, err)
		}
		witnesses = &p
	}
	dsn, err := indexDSN(cfg.Index)
	if err != nil {
		return err
	}
	var node *datadir.Node
	if cfg.Mirror != "" {
		node, err = openMirror(ctx, cfg, logger)
	} else {
		node, err = datadir.Open(ctx, datadir.Config{
			Dir: cfg.DataDir, Origin: cfg.Origin, Logger: logger, PollInterval: cfg.PollInterval, SaveInterval: cfg.SaveInterval,
			Log: datadir.LogConfig{Backend: cfg.Log, TrillianAddr: cfg.TrillianAddr, TrillianTree: cfg.TrillianTree, Linger: cfg.LogLinger,
				OpenTrillian: openTrillian},
			OpenIndex: indexOpener(dsn),
			Witnesses: witnesses,
		})
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("data directory %s is in use by another process (another provd, or prov?)", cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("open data directory %s: %w", cfg.DataDir, err)
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close data directory: %w", cerr))
		}
	}()
	scans, err := boltstore.OpenScans(node.DB, boltstore.ScansConfig{Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := scans.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close scan counts: %w", cerr))
		}
	}()

	var demoLinks []demoItem
	if cfg.Demo {
		d := &demo{node: node, keyDir: filepath.Join(cfg.DataDir, "demo-keys"), logger: logger}
		if demoLinks, err = d.run(ctx); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}

	handler, err := web.New(web.Config{Service: node.Service, Log: node.Log, Scans: scans, BaseURL: base, Logger: logger,
		Writes: cfg.writeLimits(), TrustedProxies: cfg.TrustedProxies, Mirror: webMirror(node)})
	if err != nil {
		return err
	}
	var hooks *webhook.Hooks
	if len(cfg.Webhooks) > 0 {
		hooks, err = webhook.New(webhook.Config{
			DB: node.DB, Service: node.Service, Log: node.Log, URLs: cfg.Webhooks, Secret: secret,
			BaseURL: base, Logger: logger, Attempts: cfg.WebhookAttempts, Backoff: cfg.WebhookBackoff,
		})
		if err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// A request's whole body (64 KiB at most) arrives within this, so a
		// client trickling bytes cannot hold a connection for hours.
		ReadTimeout:    30 * time.Second,
		MaxHeaderBytes: 64 << 10,
		IdleTimeout:    2 * time.Minute,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	t := node.Trust
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "provd listening on %s\n", url)
	if base != url {
		fmt.Fprintf(stdout, "public base URL   %s\n", base)
	}
	fmt.Fprintf(stdout, "data directory    %s\nlog               %s\nindex             %s\norigin            %s\nlog key           %s\noperator key      %s\n",
		cfg.DataDir, node.Backend, indexName(dsn), t.Origin, t.LogKey, t.OperatorKey)
	fmt.Fprintln(stdout, "(verifiers pin the origin and both keys: prov keys --server URL --out keys.policy)")
	for _, d := range demoLinks {
		fmt.Fprintf(stdout, "demo item (%s): %s\n", d.what, d.link(base))
	}
	if len(demoLinks) > 0 {
		fmt.Fprintf(stdout, "open the history page of a delivered item: %s\n", demoLinks[0].link(base))
	}
	logger.Info("provd started", "addr", ln.Addr().String(), "base_url", base, "data", cfg.DataDir, "log", node.Backend, "index", indexName(dsn),
		"origin", t.Origin, "log_key", t.LogKey, "operator_key", t.OperatorKey, "webhooks", len(cfg.Webhooks),
		"max_inflight_writes", cfg.MaxInFlightWrites, "client_rate", cfg.ClientRate, "trusted_proxies", cfg.TrustedProxies)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("provd stopping: finishing requests in flight", "timeout", cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	if hooks != nil {
		g.Go(func() error { return hooks.Run(gctx) })
	}
	err = g.Wait()
	logger.Info("provd stopped")
	return err
}

// readSecret reads the webhook secret from a file only its owner can read.
func readSecret(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("webhook secret %s has permissions %v; want 0600 (run chmod 600 %s)", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < 16 {
		return nil, fmt.Errorf("webhook secret %s holds %d bytes; use at least 16 (e.g. head -c 32 /dev/urandom | base64 > %s)", path, len(secret), path)
	}
	return secret, nil
}
