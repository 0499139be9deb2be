package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/web/api"
)

// maxBatchBody is the largest body POST /api/v1/events/batch reads: room
// for a full batch (api.MaxBatch) of ordinary event notes, JSON-escaped,
// and to spare. A batch of the largest notes is refused whole (413): send
// fewer at once.
const maxBatchBody = 4 << 20

// batchWorkers is how many of a batch's items are submitted at once. Each
// event still takes a write slot (WriteLimits) while it is checked and
// appended, as a single POST does.
const batchWorkers = 256

// postBatch submits a batch of signed events: a manufacturer registering a
// production run, a courier's app sending what it scanned offline. Each
// event is accepted or refused on its own (the batch is not atomic); an
// item's events go in the order given, the next once the one before is
// applied, and after one of them fails the rest are not attempted (424).
// The answer is 200 with one result per event, unless the batch itself is
// bad: not JSON (415, 400), empty (400), too large (413), or over the
// client's rate (429).
func (s *Server) postBatch(c *gin.Context) {
	client := clientKey(c.ClientIP())
	if s.clients != nil {
		// Turn away a client with no token left before reading its body;
		// the batch's own size is charged once it is known.
		if ok, wait := s.clients.peek(client, s.now()); !ok {
			s.rateLimited(c, wait)
			return
		}
	}
	if mediaType(c.GetHeader("Content-Type")) != "application/json" {
		s.metrics.events.WithLabelValues("unsupported_media_type").Inc()
		s.jsonError(c, http.StatusUnsupportedMediaType, "unsupported_media_type",
			`send a batch as application/json: {"events": ["<signed event note>", ...]}`)
		return
	}
	body, ok := s.readWrite(c, maxBatchBody, fmt.Sprintf("a batch is at most %d bytes; send fewer events at once", maxBatchBody))
	if !ok {
		return
	}
	var req api.BatchRequest
	if err := decodeBatch(body, &req); err != nil {
		s.metrics.events.WithLabelValues("bad_request").Inc()
		s.jsonError(c, http.StatusBadRequest, "bad_request",
			`a batch is a JSON object {"events": ["<signed event note>", ...]}: `+err.Error())
		return
	}
	switch n := len(req.Events); {
	case n == 0:
		s.metrics.events.WithLabelValues("bad_request").Inc()
		s.jsonError(c, http.StatusBadRequest, "bad_request", fmt.Sprintf("a batch holds 1 to %d events; this one has none", api.MaxBatch))
		return
	case n > api.MaxBatch:
		s.metrics.events.WithLabelValues("too_large").Inc()
		s.jsonError(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a batch holds at most %d events; this one has %d", api.MaxBatch, n))
		return
	}
	if s.clients != nil {
		n := len(req.Events)
		if n > s.cfg.Writes.ClientBurst {
			s.metrics.events.WithLabelValues("too_large").Inc()
			s.jsonError(c, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf(
				"a batch of %d events is more than this server lets one client send at once (%d); send smaller batches", n, s.cfg.Writes.ClientBurst))
			return
		}
		if ok, wait := s.clients.allowN(client, s.now(), n); !ok {
			s.rateLimited(c, wait)
			return
		}
	}

	// Events too large for POST /api/v1/events are refused here alike;
	// the others go to the Service.
	results := make([]api.BatchResult, len(req.Events))
	var leaves [][]byte
	var at []int // position in the batch of each of leaves
	for i, ev := range req.Events {
		if len(ev) > maxEventBody {
			results[i] = api.BatchResult{Status: http.StatusRequestEntityTooLarge,
				Error: &api.Error{Code: "too_large", Message: fmt.Sprintf("an event note is at most %d bytes", maxEventBody)}}
			continue
		}
		leaves = append(leaves, []byte(ev))
		at = append(at, i)
	}
	submitted := s.cfg.Service.SubmitBatch(c.Request.Context(), leaves, batchWorkers, s.admit.acquire)
	retry := 0
	for j, r := range submitted {
		res := &results[at[j]]
		switch {
		case r.Err == nil:
			res.Status = http.StatusCreated
			if r.Receipt.Duplicate {
				res.Status = http.StatusOK
			}
			rj := newReceiptJSON(r.Receipt)
			res.Receipt = &rj
		default:
			status, body, ra := s.errorOf(c, r.Err)
			res.Status, res.Error = status, &body
			if n, err := strconv.Atoi(ra); err == nil {
				retry = max(retry, n)
			}
		}
	}
	resp := api.BatchResponse{Results: results}
	for _, r := range results {
		outcome := "accepted"
		switch {
		case r.Status == http.StatusCreated:
			resp.Accepted++
			s.metrics.proofs.WithLabelValues("receipt").Inc()
		case r.Status == http.StatusOK:
			resp.Duplicates++
			outcome = "duplicate"
			s.metrics.proofs.WithLabelValues("receipt").Inc()
		default:
			resp.Failed++
			outcome = r.Error.Code
		}
		s.metrics.events.WithLabelValues(outcome).Inc()
	}
	if retry > 0 {
		c.Header("Retry-After", strconv.Itoa(retry))
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, resp)
}

// decodeBatch decodes a batch body strictly: one JSON object with the
// events field only, and nothing after it.
func decodeBatch(body []byte, req *api.BatchRequest) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more data after the object")
	}
	return nil
}
