package web

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/templates"
)

// A Mirror describes the log that a read-only server mirrors: Config.Log
// is then a verified copy of another server's log (merkle/tilelog), whose
// Checkpoint is the origin's latest verified one.
type Mirror struct {
	// URL is the origin server's base URL, where writes go.
	URL string
	// Stopped returns why the mirror stopped following its origin, or nil
	// while it follows.
	Stopped func() error
}

// readOnly refuses every request that could write, whatever its route:
// 403 read_only_mirror, naming the origin to send it to. Nothing is read
// from the body, and nothing changes.
func (s *Server) readOnly(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		c.Next()
		return
	}
	if c.Request.URL.Path == "/api/v1/events" || c.Request.URL.Path == "/api/v1/events/batch" {
		s.metrics.events.WithLabelValues("read_only_mirror").Inc()
	}
	s.abortJSON(c, fmt.Errorf("%w: this server mirrors the log %s of %s; send %s %s to %s",
		merkle.ErrReadOnly, s.cfg.Service.Trust().Origin, s.cfg.Mirror.URL, c.Request.Method, c.Request.URL.Path, s.cfg.Mirror.URL))
}

// mirrorNote is what a page of a mirror says about it, or nil on the
// log's own server.
func (s *Server) mirrorNote(ctx context.Context) *templates.MirrorNote {
	m := s.cfg.Mirror
	if m == nil {
		return nil
	}
	n := &templates.MirrorNote{URL: m.URL, Origin: s.cfg.Service.Trust().Origin, Stopped: m.Stopped() != nil}
	if cp, err := s.cfg.Log.Checkpoint(ctx); err == nil {
		n.Size = cp.Size
	}
	return n
}

// mirrorHealth is what /healthz adds on a mirror: whether it follows its
// origin, and how far it verified.
func (s *Server) mirrorHealth(size uint64) string {
	m := s.cfg.Mirror
	if m == nil {
		return ""
	}
	if err := m.Stopped(); err != nil {
		return fmt.Sprintf("mirror of %s: not following, serving the checkpoint of size %d verified last: %v\n", m.URL, size, err)
	}
	return fmt.Sprintf("mirror of %s: following, at the checkpoint of size %d\n", m.URL, size)
}

// mirror registers the gauges of a mirror: whether it follows its origin,
// and the size of its latest verified checkpoint.
func (m *metrics) mirror(mi *Mirror, log merkle.Log) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "provtrail_mirror_following",
			Help: "1 while this mirror follows its origin, 0 once the origin's log contradicted what was verified and following stopped.",
		}, func() float64 {
			if mi.Stopped() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "provtrail_mirror_checkpoint_size",
			Help: "The size of the origin's latest checkpoint this mirror verified and serves.",
		}, func() float64 {
			// A scrape hands no context to a gauge; a mirror's checkpoint
			// is read from memory.
			cp, err := log.Checkpoint(context.Background())
			if err != nil {
				return 0
			}
			return float64(cp.Size)
		}),
	)
}
