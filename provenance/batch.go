package provenance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrNotAttempted is the result of an event of a batch that was not
// submitted because an earlier event of the batch for the same item (or
// about the same actor) was not accepted: it would only have been refused
// for a stale prev, or accepted out of the order the batch gave.
var ErrNotAttempted = errors.New("not attempted: an earlier event of the batch for the same item or actor was not accepted")

// A BatchResult is what became of one event of a batch: its receipt, or
// why it is not in the log.
type BatchResult struct {
	Receipt Receipt
	Err     error
}

// SubmitBatch submits the events of a batch (note bytes, verbatim), each as
// Submit does, and returns their results in the batch's order. It is not
// atomic: each event is accepted or refused on its own.
//
// Events for the same item, and enrollments and revocations of the same
// actor, are submitted in the order the batch gives, each once the one
// before is applied, so a batch may carry an item's handoff and the
// receive that follows it; after one of them is not accepted, the rest of
// that item's events are not attempted (ErrNotAttempted). Events for
// different items are submitted at once, on at most workers goroutines,
// and share the log's commits.
//
// admit, if not nil, is called before each event is submitted, and the
// function it returns once it is done: the caller's admission control. An
// error from admit is that event's result, and the rest of its item's
// events are not attempted.
func (s *Service) SubmitBatch(ctx context.Context, leaves [][]byte, workers int, admit func(context.Context) (release func(), err error)) []BatchResult {
	results := make([]BatchResult, len(leaves))
	checked := make([]*Checked, len(leaves))
	// One chain of positions in the batch for each item or actor, in the
	// batch's order; a leaf that does not parse is no one's.
	var chains [][]int
	chainOf := map[lockID]int{}
	for i, leaf := range leaves {
		c, err := checkSubmitted(leaf)
		if err != nil {
			results[i].Err = err
			continue
		}
		checked[i] = c
		k := lockKey(c.Event())
		j, ok := chainOf[k]
		if !ok {
			j = len(chains)
			chainOf[k] = j
			chains = append(chains, nil)
		}
		chains[j] = append(chains[j], i)
	}

	run := func(chain []int) {
		for n, i := range chain {
			if err := ctx.Err(); err != nil {
				results[i].Err = err
				continue
			}
			if n > 0 && results[chain[n-1]].Err != nil {
				results[i].Err = ErrNotAttempted
				continue
			}
			release := func() {}
			if admit != nil {
				var err error
				if release, err = admit(ctx); err != nil {
					results[i].Err = err
					continue
				}
			}
			results[i].Receipt, results[i].Err = s.submitChecked(ctx, checked[i])
			release()
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(workers, len(chains))) {
		wg.Go(func() {
			for {
				j := int(next.Add(1) - 1)
				if j >= len(chains) {
					return
				}
				run(chains[j])
			}
		})
	}
	wg.Wait()
	return results
}
