package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/templates"
	qrcode "github.com/skip2/go-qrcode"
)

// qrPixelsPerModule is the scale of PNG QR codes.
const qrPixelsPerModule = 8

// maxLabels is the most labels one sheet request may hold.
const maxLabels = 100

// qr answers the QR code of a registered item's canonical Digital Link,
// as PNG or SVG. Codes are made for registered items only, so the server
// never hands out a label for a code it cannot vouch for.
func (s *Server) qr(c *gin.Context) {
	id, format, ok := s.qrItem(c)
	if !ok {
		return
	}
	if _, err := s.cfg.Service.Item(c.Request.Context(), id); err != nil {
		s.abortJSON(c, fmt.Errorf("qr of %s: %w", id, err))
		return
	}
	// The content depends only on the URL and the base URL.
	s.writeQR(c, id, id.DigitalLink(s.cfg.BaseURL), format, "public, max-age=31536000, immutable")
}

// qrItem returns the item a QR route names and the image format its file
// asks for, "png" or "svg". A bad file name or item is answered with a
// JSON 400; then it returns false.
func (s *Server) qrItem(c *gin.Context) (id provenance.ItemID, format string, ok bool) {
	file := c.Param("file")
	serial := ""
	switch {
	case strings.HasSuffix(file, ".png"):
		serial, format = strings.TrimSuffix(file, ".png"), "png"
	case strings.HasSuffix(file, ".svg"):
		serial, format = strings.TrimSuffix(file, ".svg"), "svg"
	default:
		s.jsonError(c, http.StatusBadRequest, "bad_request", "the file must be {serial}.png or {serial}.svg")
		return provenance.ItemID{}, "", false
	}
	id, err := provenance.NewItemID(c.Param("gtin"), serial)
	if err != nil {
		s.abortJSON(c, err)
		return provenance.ItemID{}, "", false
	}
	return id, format, true
}

// writeQR answers the QR code of link, the Digital Link of id, as format
// ("png" or "svg"), with cacheControl.
func (s *Server) writeQR(c *gin.Context, id provenance.ItemID, link, format, cacheControl string) {
	q, err := qrcode.New(link, qrcode.Medium)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("qr of %s: %w", id, err))
		return
	}
	c.Header("Cache-Control", cacheControl)
	if format == "svg" {
		c.Data(http.StatusOK, "image/svg+xml", qrSVG(q.Bitmap()))
		return
	}
	png, err := q.PNG(-qrPixelsPerModule)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("qr of %s: %w", id, err))
		return
	}
	c.Data(http.StatusOK, "image/png", png)
}

// qrSVG draws a QR bitmap (quiet zone included) as one path of unit
// squares, in a viewBox measured in modules.
func qrSVG(bitmap [][]bool) []byte {
	n := len(bitmap)
	var b strings.Builder
	size := strconv.Itoa(n)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ` + size + ` ` + size + `" shape-rendering="crispEdges">`)
	b.WriteString(`<rect width="` + size + `" height="` + size + `" fill="#fff"/><path fill="#000" d="`)
	for y, row := range bitmap {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			// One rectangle per run of dark modules in a row.
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x, y, run, run)
			x += run
		}
	}
	b.WriteString(`"/></svg>` + "\n")
	return []byte(b.String())
}

// labels renders a printable A4 sheet of QR labels for registered items:
// /labels?item=DL&item=DL...
func (s *Server) labels(c *gin.Context) {
	items := c.QueryArray("item")
	p := s.page(c, "title.labels")
	if len(items) > maxLabels {
		s.errorPage(c, http.StatusBadRequest, fmt.Sprintf("%d items; a sheet holds at most %d", len(items), maxLabels))
		return
	}
	v := templates.LabelsView{Page: p, Max: maxLabels}
	for _, in := range items {
		id, err := provenance.ParseDigitalLink(strings.TrimSpace(in))
		if err != nil {
			s.problemPage(c, http.StatusBadRequest, in, badLinkReason(err))
			return
		}
		iv, err := s.cfg.Service.Item(c.Request.Context(), id)
		if errors.Is(err, provenance.ErrNotFound) {
			s.problemPage(c, http.StatusNotFound, in, "")
			return
		}
		if err != nil {
			s.internalPage(c, fmt.Errorf("labels: %w", err))
			return
		}
		v.Labels = append(v.Labels, templates.Label{
			DigitalLink: id.DigitalLink(s.cfg.BaseURL),
			QRURL:       "/qr" + id.DigitalLink("") + ".svg",
			Product:     iv.State.Product,
			GTIN:        id.GTIN,
			Serial:      id.Serial,
		})
	}
	s.render(c, http.StatusOK, "labels", templates.LabelsPage(v))
}
