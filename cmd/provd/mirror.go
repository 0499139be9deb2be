package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
)

// openMirror opens the data directory of a mirror of cfg.Mirror, with the
// origin's keys from --mirror-policy or pinned on first use.
func openMirror(ctx context.Context, cfg Config, logger *slog.Logger) (*datadir.Node, error) {
	var trust *provenance.Trust
	if cfg.MirrorPolicy != "" {
		b, err := os.ReadFile(cfg.MirrorPolicy)
		if err != nil {
			return nil, fmt.Errorf("--mirror-policy: %w", err)
		}
		t, err := provenance.ParseTrustPolicy(b)
		if err != nil {
			return nil, fmt.Errorf("--mirror-policy %s: %w", cfg.MirrorPolicy, err)
		}
		trust = &t
	}
	return datadir.OpenMirror(ctx, datadir.MirrorConfig{Dir: cfg.DataDir, URL: cfg.Mirror, Trust: trust, Logger: logger, PollInterval: cfg.PollInterval})
}

// webMirror is what the web layer needs to serve a mirror read-only, or
// nil for a node that serves a log of its own.
func webMirror(n *datadir.Node) *web.Mirror {
	if n.Mirror == nil {
		return nil
	}
	m := n.Mirror
	return &web.Mirror{URL: m.Status().URL, Stopped: func() error { return m.Status().Stopped }}
}
