package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/templates"
	"golang.org/x/mod/sumdb/note"
)

// Signed labels (GS1 AI 8030, see provenance/label.go): the QR route
// encodes a label signature only after checking it, and the history page
// opened with ?8030= says whether the label's signature is the
// manufacturer's. Requests without ?8030= go to the plain handlers; those
// with it go through the same steps (resolvedItem, pageItem and
// historyPage in resolver.go; qrItem and writeQR in qr.go), with the
// label check between them.

// labelParam returns the ?8030= value and whether the query has one; more
// than one is an error.
func labelParam(c *gin.Context) (string, bool, error) {
	vs, ok := c.GetQueryArray(provenance.LabelAI)
	if !ok {
		return "", false, nil
	}
	if len(vs) != 1 {
		return "", true, fmt.Errorf("%d values of %s, want one", len(vs), provenance.LabelAI)
	}
	return vs[0], true, nil
}

// checkLabel checks sig against the key the item's manufacturer held when
// it registered the item. err is for failures of the server only.
func (s *Server) checkLabel(ctx context.Context, iv provenance.ItemView, sig string) (*templates.LabelCheck, error) {
	st := iv.State
	lc := &templates.LabelCheck{Signature: sig, Text: provenance.LabelText(iv.Item), Manufacturer: st.RegisteredBy}
	a, err := s.cfg.Service.Actor(ctx, st.RegisteredBy)
	if err != nil {
		return nil, fmt.Errorf("label check of %s: manufacturer %s: %w", iv.Item, st.RegisteredBy, err)
	}
	if a.Name != "" {
		lc.Manufacturer = a.Name
	}
	key := provenance.LabelKey(st, a)
	if key == "" {
		lc.Reason = fmt.Sprintf("%s held no valid key when it registered the item", st.RegisteredBy)
		return lc, nil
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("label check of %s: key of %s: %w", iv.Item, st.RegisteredBy, err)
	}
	lc.Key = key
	if err := provenance.VerifyLabel(iv.Item, sig, v); err != nil {
		var le *provenance.LabelError
		if errors.As(err, &le) {
			lc.Reason = le.Reason
		} else {
			lc.Reason = err.Error()
		}
		return lc, nil
	}
	lc.OK = true
	return lc, nil
}

// resolveLabeled is the resolver, with the label check when the page is
// opened with ?8030=. Other representations (linkset, EPCIS) ignore it.
func (s *Server) resolveLabeled(c *gin.Context) {
	sig, has, multi := labelParam(c)
	if !has || wants(c) != "page" {
		s.resolve(c)
		return
	}
	id, ok := s.resolvedItem(c)
	if !ok {
		return
	}
	iv, ok := s.pageItem(c, id)
	if !ok {
		return
	}
	p := s.page(c, "title.history")
	status := http.StatusOK
	var lc *templates.LabelCheck
	switch _, perr := provenance.ParseLabelSignature(sig); {
	case multi != nil:
		status = http.StatusBadRequest
		lc = &templates.LabelCheck{Reason: templates.Tf(p.Lang, "label.bad.form", multi.Error())}
	case perr != nil:
		// A malformed signature is bad input: the page still shows the
		// item's history, and says the label is not the manufacturer's.
		status = http.StatusBadRequest
		lc = &templates.LabelCheck{Signature: sig, Reason: templates.Tf(p.Lang, "label.bad.form", strings.TrimPrefix(perr.Error(), "bad label signature: "))}
	default:
		var err error
		if lc, err = s.checkLabel(c.Request.Context(), iv, sig); err != nil {
			s.internalPage(c, err)
			return
		}
	}
	s.historyPage(c, status, p, iv, lc)
}

// qrLabeled answers the QR code of an item's Digital Link with its label
// signature (?8030=SIG), after checking the signature against the
// manufacturer's enrolled key: the server never prints a label that would
// say "may be a copy". Without ?8030= it is the plain QR route.
func (s *Server) qrLabeled(c *gin.Context) {
	sig, has, multi := labelParam(c)
	if !has {
		s.qr(c)
		return
	}
	if multi != nil {
		s.jsonError(c, http.StatusBadRequest, "bad_label", multi.Error())
		return
	}
	id, format, ok := s.qrItem(c)
	if !ok {
		return
	}
	if _, err := provenance.ParseLabelSignature(sig); err != nil {
		s.jsonError(c, http.StatusBadRequest, "bad_label", err.Error())
		return
	}
	iv, err := s.cfg.Service.Item(c.Request.Context(), id)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("qr of %s: %w", id, err))
		return
	}
	lc, err := s.checkLabel(c.Request.Context(), iv, sig)
	if err != nil {
		s.abortJSON(c, err)
		return
	}
	if !lc.OK {
		s.jsonError(c, http.StatusBadRequest, "bad_label",
			fmt.Sprintf("the label signature does not verify against the enrolled key of %s, the item's manufacturer: %s", iv.State.RegisteredBy, lc.Reason))
		return
	}
	// A key revocation does not change a signature's bytes, but it may
	// change whether the server would encode it: cache for a day only.
	s.writeQR(c, id, provenance.LabelLink(id, s.cfg.BaseURL, sig), format, "public, max-age=86400")
}
