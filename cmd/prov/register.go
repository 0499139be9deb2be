package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
	"golang.org/x/mod/sumdb/note"
)

// DefaultBase is the default base URL of printed Digital Links.
const defaultBase = "https://id.provtrail.localhost"

// maxCount bounds --count, against a slip of the keyboard.
const maxCount = 1_000_000

func registerVerb() verb {
	return verb{
		name: "register", args: "--key FILE --gtin GTIN --product NAME [--lot LOT] [--serial S | --count N] [--place CITY] [--base URL]",
		summary: "register one item, or a batch with random serials (manufacturer)", needData: true,
		help: `
Register logs that items exist: a GTIN (8, 12, 13 or 14 digits, check
digit verified) and a serial number each, with the product name and
optionally the lot. The signer must be an enrolled manufacturer; it is the
first custodian.

With --serial, one item with that serial (GS1 AI 21: up to 20 characters).
Otherwise --count N items (default 1), each with a random, unguessable
serial, --batch items a request (default 50), --workers requests at once.
Each item is registered or refused on its own; prov stops sending at the
first refusal and says how far it got. Each item's GS1 Digital Link is printed on
stdout, one per line, ready to pipe into label printing; --base sets the
host part. Progress goes to stderr: a bar on a terminal, else a summary.

Example:

  $ prov register --key acme.key --gtin 9506000134352 --product "Trail chair" --lot L42 --count 3 > links.txt
  registered 3 items of 09506000134352 (Trail chair) at log indices 3 to 5
  $ cat links.txt
  https://id.provtrail.localhost/01/09506000134352/21/7Q3M8ZK2C4XH1R6A
  ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			key := fs.String("key", "", "the manufacturer's signer key `file`")
			gtin := fs.String("gtin", "", "the `GTIN` of the product")
			product := fs.String("product", "", "the product `name`")
			lot := fs.String("lot", "", "the batch or `lot` (GS1 AI 10)")
			serial := fs.String("serial", "", "the `serial` number of one item (default: random)")
			count := fs.Int("count", 1, "how many items to register, each with a random serial")
			place := fs.String("place", "", "where, coarsely (a `city`)")
			base := fs.String("base", defaultBase, "the base `URL` of printed Digital Links")
			workers := fs.Int("workers", 16, "how many requests to have in flight at once")
			per := fs.Int("batch", 50, fmt.Sprintf("how many items one request registers, 1 to %d (1: one request an item)", api.MaxBatch))
			return func(ctx context.Context) error {
				if err := required(fs, "key", "gtin", "product"); err != nil {
					return err
				}
				countSet := false
				fs.Visit(func(f *flag.Flag) { countSet = countSet || f.Name == "count" })
				switch {
				case *serial != "" && countSet:
					return usagef("give --serial or --count, not both")
				case *count < 1 || *count > maxCount:
					return usagef("--count %d: want 1 to %d", *count, maxCount)
				case *workers < 1:
					return usagef("--workers %d: want at least 1", *workers)
				case *per < 1 || *per > api.MaxBatch:
					return usagef("--batch %d: want 1 to %d", *per, api.MaxBatch)
				}
				ids, err := c.newItems(*gtin, *serial, *count)
				if err != nil {
					return err
				}
				signer, err := loadSigner(*key)
				if err != nil {
					return err
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				if err := checkManufacturer(ctx, b, signer.Name()); err != nil {
					return err
				}
				reg := &provenance.Register{Product: *product, Lot: *lot}
				bt := &batch{conn: c, b: b, signer: signer, reg: reg, place: *place, base: *base, ids: ids, per: *per}
				return bt.run(ctx, *workers)
			}
		},
	}
}

// newItems returns the ids of the items to register: one with serial, or
// count with random serials.
func (c *conn) newItems(gtin, serial string, count int) ([]provenance.ItemID, error) {
	if serial != "" {
		id, err := provenance.NewItemID(gtin, serial)
		if err != nil {
			return nil, err
		}
		return []provenance.ItemID{id}, nil
	}
	ids := make([]provenance.ItemID, 0, count)
	for range count {
		s, err := provenance.NewSerial(c.rand)
		if err != nil {
			return nil, err
		}
		id, err := provenance.NewItemID(gtin, s)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// checkManufacturer says plainly when the signer cannot register items,
// before a batch starts.
func checkManufacturer(ctx context.Context, b backend, id string) error {
	a, err := b.Actor(ctx, id)
	if errors.Is(err, provenance.ErrNotFound) {
		return fmt.Errorf("%s is not enrolled; the operator enrolls it as a manufacturer first", id)
	}
	if err != nil {
		return err
	}
	if a.Role != provenance.RoleManufacturer {
		return fmt.Errorf("%s is enrolled as a %s; only a manufacturer registers items", id, a.Role)
	}
	return nil
}

// A batch registers items concurrently.
type batch struct {
	*conn
	b      backend
	signer note.Signer
	reg    *provenance.Register
	place  string
	base   string
	ids    []provenance.ItemID
	per    int // items a request registers

	mu        sync.Mutex // guards what follows, and stdout
	done      int
	first     error
	low, high uint64
	last      provenance.Receipt
}

func (bt *batch) run(ctx context.Context, workers int) error {
	jobs := make(chan []provenance.ItemID)
	var wg sync.WaitGroup
	for range min(workers, (len(bt.ids)+bt.per-1)/bt.per) {
		wg.Go(func() {
			for ids := range jobs {
				if len(ids) == 1 {
					bt.register(ctx, ids[0])
				} else {
					bt.registerBatch(ctx, ids)
				}
			}
		})
	}
	stopBar := bt.progress()
feed:
	for ids := range slices.Chunk(bt.ids, bt.per) {
		bt.mu.Lock()
		failed := bt.first != nil
		bt.mu.Unlock()
		if failed {
			break
		}
		select {
		case jobs <- ids:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	stopBar()
	return bt.summary(ctx)
}

func (bt *batch) event(id provenance.ItemID) provenance.Event {
	return provenance.Event{Kind: provenance.KindRegister, Actor: bt.signer.Name(), Time: bt.eventTime(),
		Place: bt.place, Item: id, Register: bt.reg}
}

func (bt *batch) register(ctx context.Context, id provenance.ItemID) {
	r, err := submit(ctx, bt.b, bt.event(id), bt.signer)
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.record(id, r, err)
}

// registerBatch registers ids in one request.
func (bt *batch) registerBatch(ctx context.Context, ids []provenance.ItemID) {
	leaves := make([][]byte, len(ids))
	for i, id := range ids {
		leaf, err := provenance.Sign(bt.event(id), bt.signer)
		if err != nil {
			bt.mu.Lock()
			bt.record(id, provenance.Receipt{}, err)
			bt.mu.Unlock()
			return
		}
		leaves[i] = leaf
	}
	results, err := bt.b.SubmitBatch(ctx, leaves)
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if err != nil {
		bt.record(ids[0], provenance.Receipt{}, err)
		return
	}
	for i, r := range results {
		err := r.Err
		if re := (*provenance.RuleError)(nil); errors.As(err, &re) {
			err = &refusedError{re}
		}
		bt.record(ids[i], r.Receipt, err)
	}
}

// record notes the outcome of registering id. Called with bt.mu held.
func (bt *batch) record(id provenance.ItemID, r provenance.Receipt, err error) {
	if err != nil {
		if bt.first == nil {
			bt.first = err
		}
		return
	}
	if bt.done == 0 || r.Index < bt.low {
		bt.low = r.Index
	}
	bt.high = max(bt.high, r.Index)
	bt.done++
	bt.last = r
	fmt.Fprintln(bt.stdout, id.DigitalLink(bt.base))
}

// progress draws a progress bar on stderr if it is a terminal, until the
// returned function is called.
func (bt *batch) progress() (stop func()) {
	if len(bt.ids) < 2 || !bt.isTerminal(bt.stderr) {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			bt.mu.Lock()
			done := bt.done
			bt.mu.Unlock()
			drawBar(bt.stderr, done, len(bt.ids))
			select {
			case <-quit:
				bt.mu.Lock()
				drawBar(bt.stderr, bt.done, len(bt.ids))
				bt.mu.Unlock()
				fmt.Fprintln(bt.stderr)
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// drawBar draws one frame of a progress bar, returning to the line start.
func drawBar(w io.Writer, done, total int) {
	const width = 30
	filled := done * width / total
	fmt.Fprintf(w, "\rregistering [%s%s] %d/%d %3d%%", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		done, total, done*100/total)
}

// summary reports the batch on stderr, and its failure as the error.
func (bt *batch) summary(ctx context.Context) error {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	total := len(bt.ids)
	switch {
	case ctx.Err() != nil && bt.done == 0:
		return ctx.Err()
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after registering %d of %d items (their Digital Links are on stdout); items being submitted at that moment may be registered too (see \"prov history\")", bt.done, total)
	case bt.first != nil && bt.done == 0:
		return bt.first
	case bt.first != nil:
		return fmt.Errorf("registered %d of %d items (their Digital Links are on stdout), then stopped: %w", bt.done, total, bt.first)
	case total == 1:
		fmt.Fprintf(bt.stderr, "registered %s (%s) at log index %d, leaf hash %s\n",
			bt.ids[0], bt.reg.Product, bt.last.Index, bt.last.LeafHash)
	default:
		fmt.Fprintf(bt.stderr, "registered %d items of %s (%s) at log indices %d to %d\n",
			total, bt.ids[0].GTIN, bt.reg.Product, bt.low, bt.high)
	}
	return nil
}
