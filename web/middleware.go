package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// contentSecurityPolicy allows scripts, styles and connections to this
// origin only: no inline script or style anywhere.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// secure sets the security headers on every response. The server never
// sets a cookie.
func secure(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	c.Next()
}

// observe logs every request (method, route, status, duration) and
// counts it.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	d := time.Since(start)
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	s.metrics.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route).Observe(d.Seconds())
	s.log.LogAttrs(c.Request.Context(), levelFor(status), "request",
		slog.String("method", c.Request.Method), slog.String("route", route),
		slog.Int("status", status), slog.Duration("duration", d), slog.Int("bytes", c.Writer.Size()))
}

// assetServer serves the embedded assets. A request whose ?v= names the
// file's current content hash may be cached for a year (pages link the
// stylesheet that way); any other for a day, revalidated with an ETag.
type assetServer struct {
	files map[string]asset // by path under /assets/
}

type asset struct {
	body  []byte
	ctype string
	etag  string // also the ?v= version
}

// servedExt are the file types served from /assets/.
var servedExt = map[string]string{
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
	".webmanifest": "application/manifest+json", ".txt": "text/plain; charset=utf-8",
}

func newAssetServer(fsys fs.FS) (*assetServer, error) {
	a := &assetServer{files: map[string]asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == "testdata" || p == "node_modules" {
				return fs.SkipDir
			}
			return nil
		}
		base := path.Base(p)
		ctype, ok := servedExt[path.Ext(p)]
		if !ok || strings.Contains(base, ".test.") || strings.Contains(base, "_test.") || strings.Contains(base, ".spec.") {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a.files[p] = asset{body: b, ctype: ctype, etag: hex.EncodeToString(sum[:8])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load assets: %w", err)
	}
	return a, nil
}

// url returns the versioned URL of an asset, or its plain URL if it is
// missing.
func (a *assetServer) url(name string) string {
	f, ok := a.files[name]
	if !ok {
		return "/assets/" + name
	}
	return "/assets/" + name + "?v=" + f.etag
}

func (a *assetServer) serve(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("filepath"), "/")
	f, ok := a.files[name]
	if !ok {
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("no such asset\n"))
		return
	}
	etag := `"` + f.etag + `"`
	h := c.Writer.Header()
	h.Set("ETag", etag)
	if c.Query("v") == f.etag {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=86400")
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, f.ctype, f.body)
}

// mediaType returns the media type of a Content-Type header, lowercased.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// levelFor logs server errors as errors and everything else as info.
func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}
