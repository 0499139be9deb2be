package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/templates"
)

// courier renders the phone page for couriers, daigou and retailers,
// with the item panel when opened with ?item=DL.
func (s *Server) courier(c *gin.Context) {
	p := s.page(c, "title.courier")
	v := templates.CourierView{Page: p}
	status := http.StatusOK
	if in := strings.TrimSpace(c.Query("item")); in != "" {
		v.Input = in
		id, err := provenance.ParseDigitalLink(in)
		switch {
		case err != nil:
			status = http.StatusBadRequest
			v.Problem = templates.Tf(p.Lang, "vs.invalid", badLinkReason(err))
		default:
			iv, err := s.cfg.Service.Item(c.Request.Context(), id)
			switch {
			case errors.Is(err, provenance.ErrNotFound):
				status = http.StatusNotFound
				v.Problem = templates.T(p.Lang, "vs.unregistered")
			case err != nil:
				s.internalPage(c, fmt.Errorf("courier page for %s: %w", id, err))
				return
			default:
				hv := s.historyView(p, iv, 0)
				v.Item = &hv
			}
		}
	}
	s.render(c, status, "courier", templates.CourierPage(v))
}

func (s *Server) manufacturer(c *gin.Context) {
	v := templates.ManufacturerView{Page: s.page(c, "title.maker"), BaseURL: s.cfg.BaseURL}
	s.render(c, http.StatusOK, "manufacturer", templates.ManufacturerPage(v))
}

// actorPage renders the public page of one actor: its enrollment, and its
// latest events (what it signed, its enrollments and revocations), so that
// it can review its own activity and spot misuse of its key.
func (s *Server) actorPage(c *gin.Context) {
	id := c.Param("id")
	if err := provenance.CheckActorID(id); err != nil {
		s.errorPage(c, http.StatusBadRequest, err.Error())
		return
	}
	a, err := s.cfg.Service.Actor(c.Request.Context(), id)
	if errors.Is(err, provenance.ErrNotFound) {
		s.errorPage(c, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.internalPage(c, fmt.Errorf("actor page of %s: %w", id, err))
		return
	}
	p := s.page(c, "title.actor")
	p.Title = a.Name
	v := templates.ActorView{
		Page:  p,
		Actor: templates.ActorInfo{ID: a.ID, Name: a.Name, Role: string(a.Role), Verified: !a.Revoked, URL: "/actors/" + a.ID},
		Key:   a.Key,
	}
	if n := len(a.Keys); n > 0 {
		k := a.Keys[n-1]
		v.EnrolledAt = k.From
		if k.Revoked {
			v.Revoked, v.RevokedAt = true, k.To
		}
	}
	events, err := s.cfg.Service.ActorEvents(c.Request.Context(), id)
	if err != nil {
		s.internalPage(c, fmt.Errorf("actor page of %s: %w", id, err))
		return
	}
	v.EventsListed = true
	for _, he := range events {
		e := he.Event
		row := templates.EventRow{
			Index: he.Index,
			Time:  e.Time,
			Kind:  string(e.Kind),
			Actor: templates.ActorInfo{ID: e.Actor, Name: he.ActorName, Role: string(he.Role)},
			Place: e.Place,
			Proof: templates.ProofInfo{LeafIndex: he.Index, LeafHash: he.LeafHash.String()},
		}
		switch {
		case e.Kind.IsItemEvent():
			row.Detail = e.Item.String()
		case e.Enroll != nil:
			row.Detail = e.Enroll.Name + " (" + string(e.Enroll.Role) + ")"
		case e.Revoke != nil:
			row.Detail = e.Revoke.Reason
		}
		if e.Handoff != nil && e.Handoff.To != "" {
			row.To = e.Handoff.To
		}
		if e.Actor != provenance.BuyerID && e.Actor != "" && he.Role != provenance.RoleOperator {
			row.Actor.URL = "/actors/" + e.Actor
		}
		v.Events = append(v.Events, row)
	}
	s.render(c, http.StatusOK, "actor", templates.ActorPage(v))
}

// A bufferPool recycles the buffers pages are rendered into (see render),
// so that a request reuses a buffer already grown to a page's size
// instead of growing a new one, the largest of a page's allocations. Its
// zero value is ready to use.
type bufferPool struct{ pool sync.Pool }

// maxPooledBuffer bounds the buffers kept: a larger one (a sheet of many
// labels) is left to the garbage collector, so the pool never pins much
// memory.
const maxPooledBuffer = 256 << 10

func (p *bufferPool) get() *bytes.Buffer {
	if b, ok := p.pool.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

// put returns b to the pool. b must not be used after: the response was
// written from it already.
func (p *bufferPool) put(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	p.pool.Put(b)
}
