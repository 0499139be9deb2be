package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// httpBackend is a provd server, reached over its JSON API (docs/api.md).
//
// It trusts the server for nothing it can check: a receipt's inclusion
// proof is verified against the log key, and an item's state is taken
// from its proof bundle, verified, never from the history JSON. The keys
// it checks with are the ones the user pinned, or else the ones the
// server's /keys names (which proves only that the server is consistent
// with itself: history and bundle require pinned keys).
type httpBackend struct {
	base   string // no trailing slash
	client *http.Client
	pinned *provenance.Trust
	// A server that turns an event away for now (429 or 503 with
	// Retry-After) is sent it again after the wait it asked for, capped
	// at maxWait, up to tries times in all.
	tries   int
	maxWait time.Duration
	notes   io.Writer // told of each wait; nil for none

	mu    sync.Mutex
	trust *provenance.Trust // pinned, or /keys once fetched
}

var _ backend = (*httpBackend)(nil)

// maxResponse bounds what prov reads of one answer.
const maxResponse = provenance.MaxBundleSize + 1

func newHTTPBackend(server string, pinned *provenance.Trust) (*httpBackend, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: want the http:// or https:// URL of a provd", server)
	}
	return &httpBackend{
		base:   strings.TrimRight(server, "/"),
		client: &http.Client{Timeout: time.Minute},
		pinned: pinned, trust: pinned,
		tries: submitTries, maxWait: maxRetryWait,
	}, nil
}

// A busy server's answer to an event is waited out and the event sent
// again (which is safe: the same event again is a duplicate, answered
// with its receipt), submitTries times in all, each wait at most
// maxRetryWait.
const (
	submitTries  = 4
	maxRetryWait = time.Minute
)

// apiError is an error answer of provd: {"error":{"code","message"}}.
type apiError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the wait a 429 or 503 asked for (Retry-After); 0 if
	// it did not.
	RetryAfter time.Duration
	err        error // the provenance error Code stands for, if any
}

func (e *apiError) Error() string { return e.Message }
func (e *apiError) Unwrap() error { return e.err }

// do sends a request and returns the body of a 2xx answer, or an error.
func (b *httpBackend) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	return b.doAs(ctx, method, path, "text/plain; charset=utf-8", body)
}

// doAs is do with the body's content type.
func (b *httpBackend) doAs(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, fmt.Errorf("server %s: %w", b.base, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, fmt.Errorf("server %s: %s %s: %w", b.base, method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, out, nil
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(out, &e) != nil || e.Error.Code == "" {
		return 0, nil, fmt.Errorf("server %s: %s %s: %s (is this a provd?)", b.base, method, path, resp.Status)
	}
	ae := &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, err: provenance.CodeError(e.Error.Code)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		ae.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return 0, nil, ae
}

// retryAfter reads a Retry-After header at now: seconds, or an HTTP date.
// It returns 0 for none, or one that cannot be read.
func retryAfter(h string, now time.Time) time.Duration {
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

// postEvent POSTs leaf, and again after the wait a busy server asks for,
// up to b.tries times in all.
func (b *httpBackend) postEvent(ctx context.Context, leaf []byte) ([]byte, error) {
	for try := 1; ; try++ {
		_, body, err := b.do(ctx, http.MethodPost, "/api/v1/events", leaf)
		var ae *apiError
		if !errors.As(err, &ae) || ae.RetryAfter <= 0 {
			return body, err
		}
		if try >= b.tries {
			return nil, fmt.Errorf("server %s turned the event away %d times: %w", b.base, try, err)
		}
		wait := min(ae.RetryAfter, b.maxWait)
		if b.notes != nil {
			fmt.Fprintf(b.notes, "prov: server %s: %s; sending the event again in %v (try %d of %d)\n", b.base, oneLine(ae.Message), wait, try+1, b.tries)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// sleep waits d, or until ctx ends, and then says why.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *httpBackend) Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error) {
	body, err := b.postEvent(ctx, leaf)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.err != nil {
		return provenance.Receipt{}, refused(leaf, ae)
	}
	if err != nil {
		return provenance.Receipt{}, err
	}
	var r receiptJSON
	if err := json.Unmarshal(body, &r); err != nil {
		return provenance.Receipt{}, fmt.Errorf("server %s: receipt is not JSON: %w", b.base, err)
	}
	return b.checkReceipt(ctx, leaf, r)
}

// receiptJSON is a receipt as provd answers it.
type receiptJSON struct {
	Index      uint64 `json:"index"`
	LeafHash   string `json:"leaf_hash"`
	Checkpoint string `json:"checkpoint"`
	Proof      string `json:"proof"`
	Duplicate  bool   `json:"duplicate"`
}

// refused says a refusal of leaf as the local Service does.
func refused(leaf []byte, ae *apiError) error {
	re := &provenance.RuleError{Err: &refusal{reason: ae.Message, err: ae.err}}
	if e, perr := provenance.ParseEvent(leaf); perr == nil {
		re.Kind, re.Item, re.Actor = e.Kind, e.Item, e.Actor
	}
	return re
}

// checkReceipt checks a receipt for leaf: the proof must put this very
// leaf in a checkpoint signed by the log key.
func (b *httpBackend) checkReceipt(ctx context.Context, leaf []byte, r receiptJSON) (provenance.Receipt, error) {
	trust, err := b.Trust(ctx)
	if err != nil {
		return provenance.Receipt{}, err
	}
	v, err := note.NewVerifier(trust.LogKey)
	if err != nil {
		return provenance.Receipt{}, fmt.Errorf("log key: %w", err)
	}
	cp, index, err := merkle.VerifyProof([]byte(r.Proof), leaf, trust.Origin, v)
	if err != nil {
		return provenance.Receipt{}, fmt.Errorf("server %s answered with a receipt that does not verify: %w", b.base, err)
	}
	if index != r.Index || r.LeafHash != merkle.LeafHash(leaf).String() {
		return provenance.Receipt{}, fmt.Errorf("server %s answered with a receipt for index %d that proves index %d", b.base, r.Index, index)
	}
	return provenance.Receipt{Index: index, LeafHash: merkle.LeafHash(leaf), Checkpoint: cp, Proof: []byte(r.Proof), Duplicate: r.Duplicate}, nil
}

// batchPath is provd's batch route; maxBatch the most events it takes at
// once.
const (
	batchPath = "/api/v1/events/batch"
	maxBatch  = 1000
)

// SubmitBatch POSTs leaves as one batch. The events the server turned away
// (503 or 429 in their results) are sent again after the wait it asked
// for, up to b.tries times in all, as is a batch turned away whole. Each
// receipt is checked as Submit checks it.
func (b *httpBackend) SubmitBatch(ctx context.Context, leaves [][]byte) ([]provenance.BatchResult, error) {
	if len(leaves) > maxBatch {
		return nil, fmt.Errorf("a batch holds at most %d events, not %d", maxBatch, len(leaves))
	}
	results := make([]provenance.BatchResult, len(leaves))
	pending := make([]int, len(leaves)) // positions still to send
	for i := range pending {
		pending[i] = i
	}
	for try := 1; ; try++ {
		var req struct {
			Events []string `json:"events"`
		}
		for _, i := range pending {
			req.Events = append(req.Events, string(leaves[i]))
		}
		body, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		var wait time.Duration
		why := ""
		_, out, err := b.doAs(ctx, http.MethodPost, batchPath, "application/json", body)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.RetryAfter > 0:
			wait, why = ae.RetryAfter, oneLine(ae.Message)+"; sending the batch again"
			for _, i := range pending {
				results[i] = provenance.BatchResult{Err: err}
			}
		case err != nil:
			return nil, err
		default:
			var answer struct {
				Results []struct {
					Status  int          `json:"status"`
					Receipt *receiptJSON `json:"receipt"`
					Error   *struct {
						Code    string `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				} `json:"results"`
			}
			if err := json.Unmarshal(out, &answer); err != nil || len(answer.Results) != len(pending) {
				return nil, fmt.Errorf("server %s: the answer to a batch of %d events is not one result per event (%v)", b.base, len(pending), err)
			}
			var again []int
			for k, res := range answer.Results {
				i := pending[k]
				switch {
				case res.Receipt != nil && (res.Status == http.StatusCreated || res.Status == http.StatusOK):
					results[i].Receipt, results[i].Err = b.checkReceipt(ctx, leaves[i], *res.Receipt)
				case res.Error == nil:
					results[i].Err = fmt.Errorf("server %s: result %d of a batch: status %d without an error", b.base, k, res.Status)
				default:
					ae := &apiError{Status: res.Status, Code: res.Error.Code, Message: res.Error.Message, err: provenance.CodeError(res.Error.Code)}
					switch {
					case res.Status == http.StatusTooManyRequests || res.Status == http.StatusServiceUnavailable:
						again = append(again, i)
						results[i].Err = ae
						wait = time.Second // as an overloaded server asks
					case errors.Is(ae, provenance.ErrNotAttempted):
						results[i].Err = fmt.Errorf("%w: %s", provenance.ErrNotAttempted, res.Error.Message)
					case ae.err != nil && res.Status < 500:
						results[i].Err = refused(leaves[i], ae)
					default:
						results[i].Err = ae
					}
				}
			}
			pending = again
			why = fmt.Sprintf("turned away %d events of a batch; sending them again", len(pending))
		}
		if len(pending) == 0 || try >= b.tries {
			return results, nil
		}
		wait = min(wait, b.maxWait)
		if b.notes != nil {
			fmt.Fprintf(b.notes, "prov: server %s: %s in %v (try %d of %d)\n", b.base, why, wait, try+1, b.tries)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// refusal is the reason a server gave for refusing an event. It unwraps
// to the provenance sentinel its code names.
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string {
	// The server says "event N (...) refused: REASON"; the CLI says the
	// first part itself.
	if _, reason, ok := strings.Cut(r.reason, " refused: "); ok {
		return reason
	}
	return r.reason
}

func (r *refusal) Unwrap() error { return r.err }

func itemPath(id provenance.ItemID) string {
	return "/api/v1/items/" + id.GTIN + "/" + url.PathEscape(id.Serial)
}

// Item returns the item's history from its proof bundle, verified with the
// keys Trust returns.
func (b *httpBackend) Item(ctx context.Context, id provenance.ItemID) (provenance.ItemView, error) {
	bundle, err := b.Bundle(ctx, id)
	if err != nil {
		return provenance.ItemView{}, err
	}
	trust, err := b.Trust(ctx)
	if err != nil {
		return provenance.ItemView{}, err
	}
	h, err := provenance.VerifyBundle(bundle, trust)
	if err != nil {
		return provenance.ItemView{}, fmt.Errorf("server %s sent a history of %s that does not verify: %w", b.base, id, err)
	}
	return provenance.ItemView{History: h}, nil
}

func (b *httpBackend) Bundle(ctx context.Context, id provenance.ItemID) ([]byte, error) {
	_, body, err := b.do(ctx, http.MethodGet, itemPath(id)+"/bundle", nil)
	return body, err
}

func (b *httpBackend) Actor(ctx context.Context, id string) (provenance.ActorState, error) {
	_, body, err := b.do(ctx, http.MethodGet, "/api/v1/actors/"+url.PathEscape(id), nil)
	if err != nil {
		return provenance.ActorState{}, err
	}
	var a struct {
		provenance.Actor
		Revoked bool `json:"revoked"`
		Keys    []struct {
			Key     string  `json:"key"`
			From    uint64  `json:"from"`
			To      *uint64 `json:"to"`
			Revoked bool    `json:"revoked"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return provenance.ActorState{}, fmt.Errorf("server %s: actor %s is not JSON: %w", b.base, id, err)
	}
	st := provenance.ActorState{Actor: a.Actor, Revoked: a.Revoked}
	for _, k := range a.Keys {
		kw := provenance.KeyWindow{Key: k.Key, From: k.From, Revoked: k.Revoked}
		if k.To != nil {
			kw.To = *k.To
		}
		st.Keys = append(st.Keys, kw)
	}
	return st, nil
}

// Trust returns the pinned keys, or else what the server's /keys says.
func (b *httpBackend) Trust(ctx context.Context) (provenance.Trust, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.trust != nil {
		return *b.trust, nil
	}
	t, err := b.serverKeys(ctx)
	if err != nil {
		return provenance.Trust{}, err
	}
	b.trust = &t
	return t, nil
}

// serverKeys asks the server for its origin and keys.
func (b *httpBackend) serverKeys(ctx context.Context) (provenance.Trust, error) {
	_, body, err := b.do(ctx, http.MethodGet, "/keys", nil)
	if err != nil {
		return provenance.Trust{}, err
	}
	var k struct {
		Origin      string `json:"origin"`
		LogKey      string `json:"log_key"`
		OperatorKey string `json:"operator_key"`
	}
	if err := json.Unmarshal(body, &k); err != nil {
		return provenance.Trust{}, fmt.Errorf("server %s: /keys is not JSON: %w", b.base, err)
	}
	t := provenance.Trust{Origin: k.Origin, LogKey: k.LogKey, OperatorKey: k.OperatorKey}
	if _, err := pinnedTrust(t.Origin, t.LogKey, t.OperatorKey); err != nil {
		return provenance.Trust{}, fmt.Errorf("server %s: /keys: %w", b.base, err)
	}
	return t, nil
}

func (b *httpBackend) Close() error { return nil }
