package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/a-h/templ"
	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/templates"
	"golang.org/x/text/language"
)

// maxEventBody is the largest event note POST /api/v1/events reads.
const maxEventBody = 64 << 10

func (s *Server) routes() {
	e := s.engine
	// Route on the escaped path, so that a serial holding an encoded '/'
	// (%2F, allowed by GS1) stays one path segment; gin unescapes the
	// parameters once.
	e.UseRawPath = true
	e.UnescapePathValues = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = false
	e.Use(secure, s.observe, s.recoverer)
	if s.cfg.Mirror != nil {
		e.Use(s.readOnly)
	}

	// The GS1 Digital Link resolver: every path under /01/ is parsed here,
	// so that malformed codes get a page saying what is wrong.
	// With ?8030= (a signed label), the page checks the label's signature
	// and the QR route encodes only a signature that verifies (label.go).
	e.GET("/01/*rest", s.resolveLabeled)
	e.GET("/qr/01/:gtin/21/:file", s.qrLabeled)
	e.GET("/labels", s.labels)
	// The offline verifier, and the same as one HTML file to keep.
	e.GET("/verify", s.verifyPage)
	e.GET("/verify/standalone.html", s.verifyStandalone)

	e.GET("/courier", s.courier)
	e.GET("/manufacturer", s.manufacturer)
	e.GET("/actors/:id", s.actorPage)

	api := e.Group("/api/v1")
	api.POST("/events", s.postEvent)
	api.POST("/events/batch", s.postBatch)
	api.GET("/items/:gtin/:serial", s.itemJSON)
	api.GET("/items/:gtin/:serial/bundle", s.bundle)
	api.GET("/items/:gtin/:serial/epcis", s.epcisJSON)
	api.GET("/actors/:id", s.actorJSON)

	e.GET("/checkpoint", s.checkpoint)
	e.GET("/tile/*path", s.tile)
	e.GET("/keys", s.keys)
	e.GET("/healthz", s.healthz)
	e.GET("/metrics", gin.WrapH(s.metrics.handler()))
	e.GET("/assets/*filepath", s.assets.serve)
	e.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/courier") })

	e.NoRoute(s.notFound)
	e.NoMethod(func(c *gin.Context) {
		s.jsonError(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})
}

// recoverer turns a panic into a logged 500 with no internals shown.
func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.ErrorContext(c.Request.Context(), "panic", "method", c.Request.Method, "path", c.Request.URL.Path, "panic", r)
			if strings.HasPrefix(c.Request.URL.Path, "/api/") {
				s.jsonError(c, http.StatusInternalServerError, "internal", "internal error")
				return
			}
			s.errorPage(c, http.StatusInternalServerError, "")
		}
	}()
	c.Next()
}

func (s *Server) notFound(c *gin.Context) {
	if strings.HasPrefix(c.Request.URL.Path, "/api/") {
		s.jsonError(c, http.StatusNotFound, "not_found", "no API route "+c.Request.Method+" "+c.Request.URL.Path)
		return
	}
	l := s.lang(c)
	s.errorPageMsg(c, http.StatusNotFound, templates.T(l, "title.notfound"), templates.T(l, "error.notfound"))
}

// supported are the page languages, English first (the fallback).
var supported = language.NewMatcher([]language.Tag{language.English, language.SimplifiedChinese})

// lang picks the page language: ?lang=en|zh, else Accept-Language.
func (s *Server) lang(c *gin.Context) templates.Lang {
	switch c.Query("lang") {
	case "en":
		return templates.English
	case "zh":
		return templates.Chinese
	}
	tags, _, err := language.ParseAcceptLanguage(c.GetHeader("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return templates.English
	}
	_, i, conf := supported.Match(tags...)
	if i == 1 && conf != language.No {
		return templates.Chinese
	}
	return templates.English
}

// page returns what every page shares.
func (s *Server) page(c *gin.Context, titleKey string) templates.Page {
	l := s.lang(c)
	q := c.Request.URL.Query()
	q.Del("lang")
	return templates.Page{
		Lang:     l,
		Title:    templates.T(l, titleKey),
		Path:     c.Request.URL.EscapedPath(),
		Query:    q.Encode(),
		StyleURL: s.assets.url("style.css"),
		Mirror:   s.mirrorNote(c.Request.Context()),
	}
}

// render writes a page. It renders into a buffer first, so that a failed
// render becomes a clean 500 page rather than half a page.
func (s *Server) render(c *gin.Context, status int, name string, comp templ.Component) {
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	if err := comp.Render(c.Request.Context(), buf); err != nil {
		s.log.ErrorContext(c.Request.Context(), "render page", "page", name, "err", err)
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error\n"))
		c.Abort()
		return
	}
	s.metrics.renders.WithLabelValues(name).Inc()
	c.Header("Vary", "Accept, Accept-Language")
	if c.Writer.Header().Get("Cache-Control") == "" {
		c.Header("Cache-Control", "no-cache")
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// errorPage renders a generic error page; a 5xx never shows internals.
func (s *Server) errorPage(c *gin.Context, status int, msg string) {
	l := s.lang(c)
	if status >= 500 || msg == "" {
		msg = templates.T(l, "error.internal")
	}
	s.errorPageMsg(c, status, templates.T(l, "title.error"), msg)
}

func (s *Server) errorPageMsg(c *gin.Context, status int, title, msg string) {
	p := s.page(c, "title.error")
	p.Title = title
	s.render(c, status, "error", templates.ErrorPage(templates.ErrorView{Page: p, Status: status, Message: msg}))
	c.Abort()
}

// internalPage logs err in full and shows a plain 500 page. A client that
// went away before its page was built gets 499, as the API answers it:
// nobody reads the page, and nothing failed on the server.
func (s *Server) internalPage(c *gin.Context, err error) {
	if errors.Is(err, context.Canceled) {
		c.AbortWithStatus(statusClientClosed)
		return
	}
	s.log.ErrorContext(c.Request.Context(), "internal error", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	s.errorPage(c, http.StatusInternalServerError, "")
}

// problemPage renders the page for an invalid (400) or unregistered (404)
// code.
func (s *Server) problemPage(c *gin.Context, status int, input, reason string) {
	v := templates.ProblemView{Page: s.page(c, "title.problem"), Input: input, Reason: reason, Status: status}
	v.Verdict = templates.VerdictInvalid
	if status == http.StatusNotFound {
		v.Verdict = templates.VerdictUnregistered
	}
	s.render(c, status, "problem", templates.ProblemPage(v))
	c.Abort()
}

// unescapeForShow percent-decodes an input to show it, or returns it as
// is.
func unescapeForShow(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
