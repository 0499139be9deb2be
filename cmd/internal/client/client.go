// Package client is the commands' client of provd's JSON API
// (docs/api.md): prov reaches a server through it with --server, and
// provload puts a server under write load with it.
//
// It sends requests and decodes answers, nothing more: it checks no
// proof and retries nothing. An error answer is an *Error, which unwraps
// to the provenance error its code stands for (provenance.CodeError), so
// callers test it with errors.Is as they would the local Service's.
// Whether to trust a receipt, and whether and when to send a request
// again, are the caller's to decide.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
)

// A Client is a client of one provd.
type Client struct {
	base string // no trailing slash
	hc   *http.Client
}

// maxResponse bounds what the client reads of one answer: a proof bundle
// is the largest.
const maxResponse = provenance.MaxBundleSize + 1

// New returns a client of the provd at base, an http:// or https:// URL,
// that sends its requests with hc; nil is a client of its own, with a
// minute's timeout.
func New(base string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want the http:// or https:// URL of a provd", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: hc}, nil
}

// URL returns the server's base URL, without a trailing slash.
func (c *Client) URL() string { return c.base }

// An Error is an error answer of provd, {"error":{"code","message"}}, to
// a request or to one event of a batch.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the wait a 429 or 503 asked for with Retry-After (for
	// an event of a batch, the batch's); 0 if it asked for none.
	RetryAfter time.Duration
	// Err is the provenance error Code stands for, nil for a code of the
	// server's own (overloaded, too_large, ...).
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// TurnedAway reports whether the server shed the request for now (429 or
// 503: over its capacity, over the client's rate, or out of disk): it
// changed nothing, and the same request may be sent again later.
func (e *Error) TurnedAway() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable
}

// newError is the *Error of an error body answered with status.
func newError(status int, body api.Error, retryAfter time.Duration) *Error {
	e := &Error{Status: status, Code: body.Code, Message: body.Message, Err: provenance.CodeError(body.Code)}
	if e.TurnedAway() {
		e.RetryAfter = retryAfter
	}
	return e
}

// do sends a request and returns the body of a 2xx answer; an error
// answer is an *Error.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, http.Header, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, nil, fmt.Errorf("server %s: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("server %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, nil, fmt.Errorf("server %s: %s %s: %w", c.base, method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return out, resp.Header, nil
	}
	var e api.ErrorResponse
	if json.Unmarshal(out, &e) != nil || e.Error.Code == "" {
		return nil, nil, fmt.Errorf("server %s: %s %s: %s (is this a provd?)", c.base, method, path, resp.Status)
	}
	return nil, nil, newError(resp.StatusCode, e.Error, RetryAfter(resp.Header.Get("Retry-After"), time.Now()))
}

// RetryAfter reads a Retry-After header at now: seconds, or an HTTP date.
// It returns 0 for none, or one that cannot be read.
func RetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// PostEvent submits one signed event and returns its receipt, unchecked:
// Duplicate says the log held the event already.
func (c *Client) PostEvent(ctx context.Context, leaf []byte) (api.Receipt, error) {
	out, _, err := c.do(ctx, http.MethodPost, api.EventsPath, "text/plain; charset=utf-8", leaf)
	if err != nil {
		return api.Receipt{}, err
	}
	var r api.Receipt
	if err := json.Unmarshal(out, &r); err != nil {
		return api.Receipt{}, fmt.Errorf("server %s: receipt is not JSON: %w", c.base, err)
	}
	return r, nil
}

// A BatchResult is what became of one event of a batch: its receipt,
// unchecked, or an *Error (provenance.ErrNotAttempted for an event after
// one of the same item that was not accepted).
type BatchResult struct {
	Receipt api.Receipt
	Err     error
}

// PostBatch submits leaves, at most api.MaxBatch, as one batch and returns
// one result per event. An error says the batch as a whole was not taken:
// an *Error if the server answered so (TurnedAway if it shed the batch).
func (c *Client) PostBatch(ctx context.Context, leaves [][]byte) ([]BatchResult, error) {
	if len(leaves) > api.MaxBatch {
		return nil, fmt.Errorf("a batch holds at most %d events, not %d", api.MaxBatch, len(leaves))
	}
	req := api.BatchRequest{Events: make([]string, len(leaves))}
	for i, l := range leaves {
		req.Events[i] = string(l)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("batch of %d events: %w", len(leaves), err)
	}
	out, header, err := c.do(ctx, http.MethodPost, api.BatchPath, "application/json", body)
	if err != nil {
		return nil, err
	}
	var answer api.BatchResponse
	if err := json.Unmarshal(out, &answer); err != nil || len(answer.Results) != len(leaves) {
		return nil, fmt.Errorf("server %s: the answer to a batch of %d events is not one result per event (%v)", c.base, len(leaves), err)
	}
	retryAfter := RetryAfter(header.Get("Retry-After"), time.Now())
	results := make([]BatchResult, len(leaves))
	for i, res := range answer.Results {
		switch {
		case res.Receipt != nil && (res.Status == http.StatusCreated || res.Status == http.StatusOK):
			results[i].Receipt = *res.Receipt
		case res.Error == nil:
			results[i].Err = fmt.Errorf("server %s: result %d of a batch: status %d without an error", c.base, i, res.Status)
		default:
			results[i].Err = newError(res.Status, *res.Error, retryAfter)
		}
	}
	return results, nil
}

// Bundle returns the proof bundle of an item, unchecked.
func (c *Client) Bundle(ctx context.Context, id provenance.ItemID) ([]byte, error) {
	out, _, err := c.do(ctx, http.MethodGet, ItemPath(id)+"/bundle", "", nil)
	return out, err
}

// ItemPath is the API path of an item.
func ItemPath(id provenance.ItemID) string {
	return "/api/v1/items/" + id.GTIN + "/" + url.PathEscape(id.Serial)
}

// Actor returns an enrolled actor as the server says it is.
func (c *Client) Actor(ctx context.Context, id string) (provenance.ActorState, error) {
	out, _, err := c.do(ctx, http.MethodGet, "/api/v1/actors/"+url.PathEscape(id), "", nil)
	if err != nil {
		return provenance.ActorState{}, err
	}
	var a api.Actor
	if err := json.Unmarshal(out, &a); err != nil {
		return provenance.ActorState{}, fmt.Errorf("server %s: actor %s is not JSON: %w", c.base, id, err)
	}
	st := provenance.ActorState{Actor: provenance.Actor{ID: a.ID, Role: a.Role, Name: a.Name, Key: a.Key}, Revoked: a.Revoked}
	for _, k := range a.Keys {
		kw := provenance.KeyWindow{Key: k.Key, From: k.From, Revoked: k.Revoked}
		if k.To != nil {
			kw.To = *k.To
		}
		st.Keys = append(st.Keys, kw)
	}
	return st, nil
}

// Keys returns the origin and keys the server's /keys names, unchecked:
// they prove only that the server is consistent with itself.
func (c *Client) Keys(ctx context.Context) (provenance.Trust, error) {
	out, _, err := c.do(ctx, http.MethodGet, "/keys", "", nil)
	if err != nil {
		return provenance.Trust{}, err
	}
	var k api.Keys
	if err := json.Unmarshal(out, &k); err != nil {
		return provenance.Trust{}, fmt.Errorf("server %s: /keys is not JSON: %w", c.base, err)
	}
	return provenance.Trust{Origin: k.Origin, LogKey: k.LogKey, OperatorKey: k.OperatorKey}, nil
}

// CloseIdleConnections closes the connections the client keeps open for
// its next requests.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Wait waits d, as a Retry-After asks, or until ctx ends, and then says
// why.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
