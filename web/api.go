package web

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
)

// postEvent submits one signed event note, sent verbatim as the body.
//
// A client over its rate (Config.Writes.ClientRate) is answered 429 before
// its body is read; a write that finds no free slot within
// Config.Writes.QueueWait is answered 503 after it. The body is read
// outside a slot, so a slow client holds none.
func (s *Server) postEvent(c *gin.Context) {
	if s.clients != nil {
		if ok, wait := s.clients.allow(clientKey(c.ClientIP()), s.now()); !ok {
			s.rateLimited(c, wait)
			return
		}
	}
	switch mediaType(c.GetHeader("Content-Type")) {
	case "", "text/plain", "application/octet-stream":
	case "application/x-www-form-urlencoded", "multipart/form-data":
		s.metrics.events.WithLabelValues("unsupported_media_type").Inc()
		s.jsonError(c, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"an event is a signed note sent as text/plain; the web forms sign events with JavaScript, so turn JavaScript on")
		return
	default:
		s.metrics.events.WithLabelValues("unsupported_media_type").Inc()
		s.jsonError(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the signed event note as text/plain")
		return
	}
	leaf, ok := s.readWrite(c, maxEventBody, fmt.Sprintf("an event note is at most %d bytes", maxEventBody))
	if !ok {
		return
	}
	release, err := s.admit.acquire(c.Request.Context())
	if err != nil {
		s.abortWrite(c, err)
		return
	}
	r, err := s.cfg.Service.Submit(c.Request.Context(), leaf)
	release()
	if err != nil {
		s.abortWrite(c, err)
		return
	}
	status, outcome := http.StatusCreated, "accepted"
	if r.Duplicate {
		status, outcome = http.StatusOK, "duplicate"
	}
	s.metrics.events.WithLabelValues(outcome).Inc()
	s.metrics.proofs.WithLabelValues("receipt").Inc()
	c.Header("Cache-Control", "no-store")
	c.JSON(status, newReceiptJSON(r))
}

// newReceiptJSON is a receipt as both write routes answer it.
func newReceiptJSON(r provenance.Receipt) api.Receipt {
	return api.Receipt{Index: r.Index, LeafHash: r.LeafHash, Checkpoint: string(r.Checkpoint.Note),
		Proof: string(r.Proof), Duplicate: r.Duplicate}
}

// readWrite reads the body of a write, at most limit bytes. If it cannot,
// it answers 413 saying tooLarge, or 400, and returns false.
func (s *Server) readWrite(c *gin.Context, limit int64, tooLarge string) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err == nil {
		return body, true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.metrics.events.WithLabelValues("too_large").Inc()
		s.jsonError(c, http.StatusRequestEntityTooLarge, "too_large", tooLarge)
		return nil, false
	}
	s.metrics.events.WithLabelValues("read_error").Inc()
	s.jsonError(c, http.StatusBadRequest, "bad_request", "could not read the request body")
	return nil, false
}

// abortWrite answers a write that was turned away or refused, and counts
// it by its error code.
func (s *Server) abortWrite(c *gin.Context, err error) {
	_, code := classify(err)
	s.metrics.events.WithLabelValues(code).Inc()
	s.abortJSON(c, err)
}

// rateLimited answers a write over its client's rate: 429, and when a
// token is back.
func (s *Server) rateLimited(c *gin.Context, wait time.Duration) {
	ra := retryAfter(wait)
	s.metrics.events.WithLabelValues("rate_limited").Inc()
	c.Header("Retry-After", ra)
	s.jsonError(c, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf(
		"this client sends more than %s events/s (bursts of %d); retry after %s s",
		strconv.FormatFloat(s.cfg.Writes.ClientRate, 'f', -1, 64), s.cfg.Writes.ClientBurst, ra))
}

// itemParam returns the item named by the :gtin and :serial parameters.
func itemParam(c *gin.Context) (provenance.ItemID, error) {
	return provenance.NewItemID(c.Param("gtin"), c.Param("serial"))
}

// historyJSON is an item's state and events, with the checkpoint.
type historyJSON struct {
	Item         string       `json:"item"`
	DigitalLink  string       `json:"digital_link"`
	Product      string       `json:"product"`
	Lot          string       `json:"lot,omitempty"`
	Description  string       `json:"description,omitempty"`
	Status       string       `json:"status"`
	Custodian    string       `json:"custodian"`
	RegisteredBy string       `json:"registered_by"`
	Pending      *pendingJSON `json:"pending,omitempty"`
	Dispute      *disputeJSON `json:"dispute,omitempty"`
	Delivered    string       `json:"delivered,omitempty"`
	Last         merkle.Hash  `json:"last"` // leaf hash of the latest event: the next event's prev
	LastIndex    uint64       `json:"last_index"`
	Events       []eventJSON  `json:"events"`
	Checkpoint   string       `json:"checkpoint"`
	Keys         api.Keys     `json:"keys"`
}

type pendingJSON struct {
	Index uint64 `json:"index"`
	To    string `json:"to,omitempty"` // "" for a handoff to a buyer by claim code
	Claim bool   `json:"claim"`
}

type disputeJSON struct {
	Index  uint64 `json:"index"`
	By     string `json:"by"`
	Reason string `json:"reason"`
}

type eventJSON struct {
	Index     uint64          `json:"index"`
	LeafHash  merkle.Hash     `json:"leaf_hash"`
	Actor     string          `json:"actor"`
	ActorName string          `json:"actor_name,omitempty"`
	Role      provenance.Role `json:"role"`
	Kind      provenance.Kind `json:"kind"`
	Time      string          `json:"time"`
	Place     string          `json:"place,omitempty"`
	To        string          `json:"to,omitempty"`
	Detail    string          `json:"detail,omitempty"`
}

func (s *Server) itemJSON(c *gin.Context) {
	id, err := itemParam(c)
	if err != nil {
		s.abortJSON(c, err)
		return
	}
	v, err := s.cfg.Service.Item(c.Request.Context(), id)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("history of %s: %w", id, err))
		return
	}
	st := v.State
	h := historyJSON{
		Item: id.String(), DigitalLink: id.DigitalLink(s.cfg.BaseURL),
		Product: st.Product, Lot: st.Lot, Description: st.Description,
		Status: string(st.Status), Custodian: st.Custodian, RegisteredBy: st.RegisteredBy,
		Last: st.Last, LastIndex: st.LastIndex, Events: []eventJSON{},
		Checkpoint: string(v.Checkpoint.Note), Keys: api.Keys(keysInfo(s.cfg.Service.Trust())),
	}
	if p := st.Pending; p != nil {
		h.Pending = &pendingJSON{Index: p.Index, To: p.To, Claim: p.To == ""}
	}
	if d := st.Dispute; d != nil {
		h.Dispute = &disputeJSON{Index: d.Index, By: d.By, Reason: d.Reason}
	}
	if !st.Delivered.IsZero() {
		h.Delivered = st.Delivered.UTC().Format(time.RFC3339)
	}
	for _, he := range v.Events {
		e := he.Event
		ej := eventJSON{
			Index: he.Index, LeafHash: he.LeafHash, Actor: e.Actor, ActorName: he.ActorName,
			Role: he.Role, Kind: e.Kind, Time: e.Time.UTC().Format(time.RFC3339), Place: e.Place,
		}
		switch {
		case e.Register != nil:
			ej.Detail = e.Register.Product
		case e.Handoff != nil:
			ej.To = e.Handoff.To
		case e.Dispute != nil:
			ej.Detail = e.Dispute.Reason
		case e.Ruling != nil:
			ej.Detail = e.Ruling.Decision
		}
		h.Events = append(h.Events, ej)
	}
	c.Header("Cache-Control", "no-cache")
	c.JSON(http.StatusOK, h)
}

// bundle answers an item's proof bundle as a download.
func (s *Server) bundle(c *gin.Context) {
	id, err := itemParam(c)
	if err != nil {
		s.abortJSON(c, err)
		return
	}
	b, err := s.cfg.Service.Bundle(c.Request.Context(), id)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("bundle of %s: %w", id, err))
		return
	}
	s.metrics.proofs.WithLabelValues("bundle").Inc()
	name := "item-" + id.GTIN + "-" + safeFileName(id.Serial) + ".provtrail-bundle.json"
	c.Header("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "application/json", b)
}

// safeFileName replaces every character outside A-Z a-z 0-9 - . _ with _.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func (s *Server) epcisJSON(c *gin.Context) {
	id, err := itemParam(c)
	if err != nil {
		s.abortJSON(c, err)
		return
	}
	s.epcis(c, id)
}

func (s *Server) actorJSON(c *gin.Context) {
	id := c.Param("id")
	if err := provenance.CheckActorID(id); err != nil {
		s.abortJSON(c, err)
		return
	}
	a, err := s.cfg.Service.Actor(c.Request.Context(), id)
	if err != nil {
		s.abortJSON(c, fmt.Errorf("actor %s: %w", id, err))
		return
	}
	body := api.Actor{ID: a.ID, Role: a.Role, Name: a.Name, Key: a.Key, Revoked: a.Revoked, Keys: []api.KeyWindow{}}
	for _, k := range a.Keys {
		kw := api.KeyWindow{Key: k.Key, From: k.From, Revoked: k.Revoked}
		if k.Revoked {
			to := k.To
			kw.To = &to
		}
		body.Keys = append(body.Keys, kw)
	}
	c.Header("Cache-Control", "no-cache")
	c.JSON(http.StatusOK, body)
}

// checkpoint serves the log's latest signed checkpoint note.
func (s *Server) checkpoint(c *gin.Context) {
	cp, err := s.cfg.Log.Checkpoint(c.Request.Context())
	if err != nil {
		s.log.ErrorContext(c.Request.Context(), "checkpoint", "err", err)
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("log unavailable\n"))
		return
	}
	if len(cp.Note) == 0 {
		// A mirror that has verified no checkpoint of its origin yet.
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("no verified checkpoint yet\n"))
		return
	}
	c.Header("Cache-Control", "no-cache, max-age=1")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", cp.Note)
}

// keys serves what verifiers pin.
func (s *Server) keys(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	c.JSON(http.StatusOK, api.Keys(keysInfo(s.cfg.Service.Trust())))
}

// healthz answers ok when the log answers a checkpoint. A mirror says,
// on a second line, whether it follows its origin.
func (s *Server) healthz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	cp, err := s.cfg.Log.Checkpoint(c.Request.Context())
	if err != nil {
		s.log.ErrorContext(c.Request.Context(), "health check", "err", err)
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("log unavailable\n"))
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("ok\n"+s.mirrorHealth(cp.Size)))
}
