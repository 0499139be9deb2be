package web

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/assets"
	"github.com/provtrail/provtrail/templates"
)

// maxBundleURL bounds ?bundle= on /verify.
const maxBundleURL = 2048

// verifyPage is the offline verifier: GET /verify[?bundle=PATH]. The page
// checks a bundle in the browser with verify.js; the server only fills in
// its keys (as a starting point the page tells users to replace) and the
// bundle's same-origin path.
func (s *Server) verifyPage(c *gin.Context) {
	p := s.page(c, "title.verify")
	v := templates.VerifyView{Page: p, Keys: keysInfo(s.cfg.Service.Trust()), StandaloneURL: "/verify/standalone.html"}
	if p.Lang == templates.Chinese {
		v.StandaloneURL += "?lang=zh"
	}
	if raw, ok := c.GetQuery("bundle"); ok {
		path, err := s.sameOriginPath(c, raw)
		if err != nil {
			s.errorPage(c, http.StatusBadRequest, templates.Tf(p.Lang, "vp.bad.bundle.url", err.Error()))
			return
		}
		v.BundleURL = path
	}
	s.render(c, http.StatusOK, "verify", templates.VerifyPage(v))
}

// sameOriginPath returns raw as a path on this server: a path starting
// with one "/", or an http(s) URL of this host or of the base URL's host.
func (s *Server) sameOriginPath(c *gin.Context, raw string) (string, error) {
	if raw == "" {
		return "", errors.New("it is empty")
	}
	if len(raw) > maxBundleURL {
		return "", fmt.Errorf("%d characters, at most %d", len(raw), maxBundleURL)
	}
	u, err := url.Parse(raw)
	if err != nil || strings.ContainsAny(raw, "\\\x00\r\n\t ") {
		return "", errors.New("it is not a URL")
	}
	switch {
	case u.Scheme == "" && u.Host == "" && u.Opaque == "" && strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//"):
	case u.Scheme == "http" || u.Scheme == "https":
		base, _ := url.Parse(s.cfg.BaseURL)
		if u.User != nil || (u.Host != c.Request.Host && u.Host != base.Host) {
			return "", fmt.Errorf("%s is another origin", u.Host)
		}
	default:
		return "", errors.New("not a path on this server")
	}
	if u.Fragment != "" {
		u.Fragment = ""
	}
	return u.RequestURI(), nil
}

// standalone is the inline part of the standalone verifier: the stylesheet
// and the scripts, and the CSP that allows exactly them by hash. It depends
// only on the embedded assets, so it is built once.
var standalone struct {
	once          sync.Once
	style, script string
	csp           string
	err           error
}

func buildStandalone() {
	read := func(name string) string {
		b, err := fs.ReadFile(assets.FS, name)
		if err != nil && standalone.err == nil {
			standalone.err = err
		}
		return string(b)
	}
	style := read("style.css")
	script := read("verify.js") + "\n" + read("verifypage.js")
	if standalone.err != nil {
		return
	}
	// Inline text ends at the first "</style" or "</script"; neither file
	// may hold one (nor "<!--", which changes how a script is parsed).
	if strings.Contains(strings.ToLower(style), "</style") || strings.Contains(strings.ToLower(script), "</script") || strings.Contains(script, "<!--") {
		standalone.err = errors.New("an asset holds text that ends an inline element")
		return
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	standalone.style, standalone.script = style, script
	standalone.csp = "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) +
		"; img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
}

// verifyStandalone answers the verifier as one self-contained HTML file to
// save and open from disk (GET /verify/standalone.html). It is an
// attachment, never shown as a page of this origin: its inline script is
// allowed only by its own meta CSP, by hash.
func (s *Server) verifyStandalone(c *gin.Context) {
	standalone.once.Do(buildStandalone)
	if standalone.err != nil {
		s.internalPage(c, fmt.Errorf("standalone verifier: %w", standalone.err))
		return
	}
	p := s.page(c, "title.verify")
	v := templates.VerifyView{Page: p, Keys: keysInfo(s.cfg.Service.Trust()), Standalone: true,
		Style: standalone.style, Script: standalone.script, CSP: standalone.csp}
	buf := s.bufs.get()
	defer s.bufs.put(buf)
	if err := templates.VerifyStandalone(v).Render(c.Request.Context(), buf); err != nil {
		s.internalPage(c, fmt.Errorf("standalone verifier: %w", err))
		return
	}
	s.metrics.renders.WithLabelValues("verify-standalone").Inc()
	c.Header("Content-Disposition", `attachment; filename="provtrail-verify.html"`)
	c.Header("Cache-Control", "no-cache")
	c.Header("Vary", "Accept-Language")
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}
