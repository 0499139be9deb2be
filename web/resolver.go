package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/templates"
)

// GS1 link types (https://ref.gs1.org/voc/) and provtrail's own, for the
// linkset and for ?linkType=.
const (
	linkTypePIP          = "https://gs1.org/voc/pip"
	linkTypeDefault      = "https://gs1.org/voc/defaultLink"
	linkTypeTraceability = "https://gs1.org/voc/traceability"
)

// parseItemPath parses the escaped path of a resolver request: exactly
// "/01/{gtin}/21/{serial}", checked by provenance.ParseDigitalLink.
func parseItemPath(escaped string) (provenance.ItemID, error) {
	id, err := provenance.ParseDigitalLink(escaped)
	if err != nil {
		return provenance.ItemID{}, err
	}
	// ParseDigitalLink takes the last four segments of any path; the
	// resolver serves exactly four under the root.
	if strings.Count(escaped, "/") != 4 {
		return provenance.ItemID{}, &provenance.DigitalLinkError{Input: escaped, Reason: `path is not exactly "/01/{gtin}/21/{serial}"`}
	}
	return id, nil
}

// badLinkReason returns what ParseDigitalLink said was wrong.
func badLinkReason(err error) string {
	var dle *provenance.DigitalLinkError
	if errors.As(err, &dle) {
		return dle.Reason
	}
	return err.Error()
}

// resolve is the GS1 Digital Link resolver: the history page, the EPCIS
// export or the linkset of one item.
func (s *Server) resolve(c *gin.Context) {
	id, ok := s.resolvedItem(c)
	if !ok {
		return
	}
	switch wants(c) {
	case "linkset":
		s.linkset(c, id)
	case "epcis":
		s.epcis(c, id)
	default:
		s.history(c, id)
	}
}

// resolvedItem returns the item a resolver request names. A path that is
// no Digital Link is answered with the problem page, and one that is not
// the canonical path with a redirect to it; then it returns false.
func (s *Server) resolvedItem(c *gin.Context) (provenance.ItemID, bool) {
	raw := c.Request.URL.EscapedPath()
	id, err := parseItemPath(raw)
	if err != nil {
		s.problemPage(c, http.StatusBadRequest, unescapeForShow(raw), badLinkReason(err))
		return provenance.ItemID{}, false
	}
	if canon := id.DigitalLink(""); raw != canon {
		if q := c.Request.URL.RawQuery; q != "" {
			canon += "?" + q
		}
		c.Header("Cache-Control", "public, max-age=86400")
		c.Redirect(http.StatusMovedPermanently, canon)
		return provenance.ItemID{}, false
	}
	return id, true
}

// wants names the representation a resolver request asks for: linkType
// first (as GS1 resolvers do), then the Accept header.
func wants(c *gin.Context) string {
	switch c.Query("linkType") {
	case "all", "linkset":
		return "linkset"
	case "gs1:traceability", linkTypeTraceability:
		return "epcis"
	case "":
	default:
		return "page" // gs1:pip, gs1:defaultLink and unknown types: the page
	}
	accept := c.GetHeader("Accept")
	switch {
	case strings.Contains(accept, "application/linkset+json"):
		return "linkset"
	case strings.Contains(accept, "application/ld+json"):
		return "epcis"
	}
	return "page"
}

// history renders the history page and counts the scan.
func (s *Server) history(c *gin.Context, id provenance.ItemID) {
	iv, ok := s.pageItem(c, id)
	if !ok {
		return
	}
	s.historyPage(c, http.StatusOK, s.page(c, "title.history"), iv, nil)
}

// pageItem returns the item a page shows. An item that is not registered
// is answered with the problem page, and a failure to read it with the
// error page; then it returns false.
func (s *Server) pageItem(c *gin.Context, id provenance.ItemID) (provenance.ItemView, bool) {
	iv, err := s.cfg.Service.Item(c.Request.Context(), id)
	if errors.Is(err, provenance.ErrNotFound) {
		s.problemPage(c, http.StatusNotFound, id.DigitalLink(s.cfg.BaseURL), "")
		return provenance.ItemView{}, false
	}
	if err != nil {
		s.internalPage(c, fmt.Errorf("history page of %s: %w", id, err))
		return provenance.ItemView{}, false
	}
	return iv, true
}

// historyPage counts the scan of iv and renders its history page on p,
// with status and the check of the label it was opened with (nil for
// none).
func (s *Server) historyPage(c *gin.Context, status int, p templates.Page, iv provenance.ItemView, label *templates.LabelCheck) {
	ctx := c.Request.Context()
	var scans uint64
	if s.cfg.Scans != nil {
		var err error
		if scans, err = s.cfg.Scans.Scan(ctx, iv.Item); err != nil {
			s.log.WarnContext(ctx, "count scan", "item", iv.Item.String(), "err", err)
		}
	}
	s.metrics.scans.Inc()
	s.metrics.proofs.WithLabelValues("history").Inc()
	hv := s.historyView(p, iv, scans)
	hv.Label = label
	s.render(c, status, "history", templates.HistoryPage(hv))
}

// A link is one target in a linkset (RFC 9264).
type link struct {
	Href     string   `json:"href"`
	Title    string   `json:"title,omitempty"`
	Type     string   `json:"type,omitempty"`
	HrefLang []string `json:"hreflang,omitempty"`
}

// linkset answers the GS1 linkset of a registered item
// (application/linkset+json).
func (s *Server) linkset(c *gin.Context, id provenance.ItemID) {
	if _, err := s.cfg.Service.Item(c.Request.Context(), id); err != nil {
		if errors.Is(err, provenance.ErrNotFound) {
			s.abortJSON(c, err)
			return
		}
		s.abortJSON(c, fmt.Errorf("linkset of %s: %w", id, err))
		return
	}
	page := id.DigitalLink(s.cfg.BaseURL)
	api := s.cfg.BaseURL + "/api/v1/items/" + id.GTIN + "/" + pathSerial(id)
	qr := s.cfg.BaseURL + "/qr" + id.DigitalLink("")
	ls := map[string]any{
		"linkset": []map[string]any{{
			"anchor":             page,
			linkTypeDefault:      []link{{Href: page, Title: "Custody history and verdict", Type: "text/html", HrefLang: []string{"en", "zh"}}},
			linkTypePIP:          []link{{Href: page, Title: "Custody history and verdict", Type: "text/html", HrefLang: []string{"en", "zh"}}},
			linkTypeTraceability: []link{{Href: page + "?linkType=gs1:traceability", Title: "EPCIS 2.0 events", Type: "application/ld+json"}},
			s.cfg.BaseURL + "/ns/linktypes#proofBundle": []link{{Href: api + "/bundle", Title: "Proof bundle, verifiable offline", Type: "application/json"}},
			s.cfg.BaseURL + "/ns/linktypes#qrCode": []link{
				{Href: qr + ".svg", Title: "QR code", Type: "image/svg+xml"},
				{Href: qr + ".png", Title: "QR code", Type: "image/png"},
			},
		}},
	}
	b, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		s.abortJSON(c, fmt.Errorf("linkset of %s: %w", id, err))
		return
	}
	c.Header("Vary", "Accept")
	c.Header("Link", "<"+page+">; rel=\"canonical\"")
	c.Data(http.StatusOK, "application/linkset+json", append(b, '\n'))
}

// epcis answers the EPCIS 2.0 export of an item's history.
func (s *Server) epcis(c *gin.Context, id provenance.ItemID) {
	v, err := s.cfg.Service.Item(c.Request.Context(), id)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("epcis of %s: %w", id, err))
		return
	}
	doc := provenance.EPCIS(v.History, s.cfg.BaseURL, s.now())
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		s.abortJSON(c, fmt.Errorf("epcis of %s: %w", id, err))
		return
	}
	c.Header("Vary", "Accept")
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/ld+json", append(b, '\n'))
}

// pathSerial is the serial as one escaped path segment.
func pathSerial(id provenance.ItemID) string {
	dl := id.DigitalLink("")
	return dl[strings.LastIndexByte(dl, '/')+1:]
}
