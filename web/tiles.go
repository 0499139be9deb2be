package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/merkle"
)

// tile serves the C2SP tlog-tiles hash tiles and entry bundles, so that
// monitors and witnesses written by others can follow the log. Every tile,
// partial ones included, is immutable: its bytes depend only on its path.
func (s *Server) tile(c *gin.Context) {
	tl, ok := s.cfg.Log.(merkle.TileLog)
	if !ok {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("this log does not serve tiles\n"))
		return
	}
	tp, err := merkle.ParseTilePath(strings.TrimPrefix(c.Request.URL.Path, "/"))
	if err != nil {
		c.Data(http.StatusBadRequest, "text/plain; charset=utf-8", []byte(err.Error()+"\n"))
		return
	}
	ctx := c.Request.Context()
	var b []byte
	if tp.Level < 0 {
		b, err = tl.EntryBundle(ctx, tp.Index, tp.Width)
	} else {
		b, err = tl.Tile(ctx, uint8(tp.Level), tp.Index, tp.Width)
	}
	switch {
	case errors.Is(err, merkle.ErrOutOfRange):
		c.Header("Cache-Control", "no-cache, max-age=1")
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("the log does not hold this tile yet\n"))
		return
	case err != nil:
		s.log.ErrorContext(ctx, "tile", "path", c.Request.URL.Path, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error\n"))
		return
	}
	s.metrics.proofs.WithLabelValues("tile").Inc()
	c.Header("Cache-Control", "public, max-age=31536000, immutable")
	c.Data(http.StatusOK, "application/octet-stream", b)
}
