package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/client"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
	"golang.org/x/mod/sumdb/note"
)

// httpBackend is a provd server, reached over its JSON API (docs/api.md)
// with the commands' client.
//
// It trusts the server for nothing it can check: a receipt's inclusion
// proof is verified against the log key, and an item's state is taken
// from its proof bundle, verified, never from the history JSON. The keys
// it checks with are the ones the user pinned, or else the ones the
// server's /keys names (which proves only that the server is consistent
// with itself: history and bundle require pinned keys).
type httpBackend struct {
	api    *client.Client
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

func newHTTPBackend(server string, pinned *provenance.Trust) (*httpBackend, error) {
	c, err := client.New(server, nil)
	if err != nil {
		return nil, usagef("--server %v", err)
	}
	return &httpBackend{
		api:    c,
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

// postEvent POSTs leaf, and again after the wait a busy server asks for,
// up to b.tries times in all.
func (b *httpBackend) postEvent(ctx context.Context, leaf []byte) (api.Receipt, error) {
	for try := 1; ; try++ {
		r, err := b.api.PostEvent(ctx, leaf)
		var ce *client.Error
		if !errors.As(err, &ce) || ce.RetryAfter <= 0 {
			return r, err
		}
		if try >= b.tries {
			return api.Receipt{}, fmt.Errorf("server %s turned the event away %d times: %w", b.api.URL(), try, err)
		}
		wait := min(ce.RetryAfter, b.maxWait)
		if b.notes != nil {
			fmt.Fprintf(b.notes, "prov: server %s: %s; sending the event again in %v (try %d of %d)\n", b.api.URL(), oneLine(ce.Message), wait, try+1, b.tries)
		}
		if err := client.Wait(ctx, wait); err != nil {
			return api.Receipt{}, err
		}
	}
}

func (b *httpBackend) Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error) {
	r, err := b.postEvent(ctx, leaf)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 && ce.Err != nil {
		return provenance.Receipt{}, refused(leaf, ce)
	}
	if err != nil {
		return provenance.Receipt{}, err
	}
	return b.checkReceipt(ctx, leaf, r)
}

// refused says a refusal of leaf as the local Service does.
func refused(leaf []byte, ce *client.Error) error {
	re := &provenance.RuleError{Err: &refusal{reason: ce.Message, err: ce.Err}}
	if e, perr := provenance.ParseEvent(leaf); perr == nil {
		re.Kind, re.Item, re.Actor = e.Kind, e.Item, e.Actor
	}
	return re
}

// checkReceipt checks a receipt for leaf: the proof must put this very
// leaf in a checkpoint signed by the log key.
func (b *httpBackend) checkReceipt(ctx context.Context, leaf []byte, r api.Receipt) (provenance.Receipt, error) {
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
		return provenance.Receipt{}, fmt.Errorf("server %s answered with a receipt that does not verify: %w", b.api.URL(), err)
	}
	if index != r.Index || r.LeafHash != merkle.LeafHash(leaf) {
		return provenance.Receipt{}, fmt.Errorf("server %s answered with a receipt for index %d that proves index %d", b.api.URL(), r.Index, index)
	}
	return provenance.Receipt{Index: index, LeafHash: merkle.LeafHash(leaf), Checkpoint: cp, Proof: []byte(r.Proof), Duplicate: r.Duplicate}, nil
}

// SubmitBatch POSTs leaves as one batch. The events the server turned away
// (503 or 429 in their results) are sent again after the wait it asked
// for, up to b.tries times in all, as is a batch turned away whole. Each
// receipt is checked as Submit checks it.
func (b *httpBackend) SubmitBatch(ctx context.Context, leaves [][]byte) ([]provenance.BatchResult, error) {
	if len(leaves) > api.MaxBatch {
		return nil, fmt.Errorf("a batch holds at most %d events, not %d", api.MaxBatch, len(leaves))
	}
	results := make([]provenance.BatchResult, len(leaves))
	pending := make([]int, len(leaves)) // positions still to send
	for i := range pending {
		pending[i] = i
	}
	for try := 1; ; try++ {
		batch := make([][]byte, len(pending))
		for k, i := range pending {
			batch[k] = leaves[i]
		}
		var wait time.Duration
		why := ""
		answer, err := b.api.PostBatch(ctx, batch)
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && ce.RetryAfter > 0:
			wait, why = ce.RetryAfter, oneLine(ce.Message)+"; sending the batch again"
			for _, i := range pending {
				results[i] = provenance.BatchResult{Err: err}
			}
		case err != nil:
			return nil, err
		default:
			var again []int
			for k, res := range answer {
				i := pending[k]
				var ce *client.Error
				switch {
				case res.Err == nil:
					results[i].Receipt, results[i].Err = b.checkReceipt(ctx, leaves[i], res.Receipt)
				case !errors.As(res.Err, &ce):
					results[i].Err = res.Err
				case ce.TurnedAway():
					again = append(again, i)
					results[i].Err = ce
					// As an overloaded server asks, if it said nothing.
					wait = max(wait, ce.RetryAfter, time.Second)
				case errors.Is(ce, provenance.ErrNotAttempted):
					results[i].Err = ce
				case ce.Err != nil && ce.Status < 500:
					results[i].Err = refused(leaves[i], ce)
				default:
					results[i].Err = ce
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
			fmt.Fprintf(b.notes, "prov: server %s: %s in %v (try %d of %d)\n", b.api.URL(), why, wait, try+1, b.tries)
		}
		if err := client.Wait(ctx, wait); err != nil {
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
		return provenance.ItemView{}, fmt.Errorf("server %s sent a history of %s that does not verify: %w", b.api.URL(), id, err)
	}
	return provenance.ItemView{History: h}, nil
}

func (b *httpBackend) Bundle(ctx context.Context, id provenance.ItemID) ([]byte, error) {
	return b.api.Bundle(ctx, id)
}

func (b *httpBackend) Actor(ctx context.Context, id string) (provenance.ActorState, error) {
	return b.api.Actor(ctx, id)
}

// Trust returns the pinned keys, or else what the server's /keys says.
func (b *httpBackend) Trust(ctx context.Context) (provenance.Trust, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.trust != nil {
		return *b.trust, nil
	}
	t, err := b.api.Keys(ctx)
	if err != nil {
		return provenance.Trust{}, err
	}
	if _, err := pinnedTrust(t.Origin, t.LogKey, t.OperatorKey); err != nil {
		return provenance.Trust{}, fmt.Errorf("server %s: /keys: %w", b.api.URL(), err)
	}
	b.trust = &t
	return t, nil
}

func (b *httpBackend) Close() error {
	b.api.CloseIdleConnections()
	return nil
}
