// Package webhook tells an operator's escrow services when an item is
// delivered to its buyer or disputed, by a signed JSON POST to each
// configured URL.
//
// The hooks follow the log through the Service ([Follower]), never the
// HTTP traffic: every delivery and dispute the log accepts is announced,
// whoever submitted it, and a restart resumes where the hooks stopped.
//
// # Body and signature
//
// Each POST carries one JSON object:
//
//	{"event": "delivered" | "disputed",
//	 "item": "01/{gtin}/21/{serial}", "digital_link": "https://.../01/.../21/...",
//	 "index": 41, "leaf_hash": "base64", "time": "2026-03-01T12:00:00Z",
//	 "checkpoint": "signed checkpoint note", "proof": "c2sp.org/tlog-proof@v1 ..."}
//
// time is the event's own time; checkpoint and proof let the receiver
// check offline that the event is in the log. The header
// X-Provtrail-Signature is "sha256=" and the lowercase hex HMAC-SHA256 of
// the body under the shared secret; X-Provtrail-Delivery names the
// delivery ("41/0": log index and URL number), the same on every retry.
//
// # Retries and the delivery log
//
// Any answer but a 2xx, or none within the timeout, is retried with
// exponential backoff (by default 6 attempts over about a minute). Every
// attempt is recorded in the bbolt bucket "provd-webhooks" of the data
// directory's file, and logged by provd as a "webhook attempt" line;
// "prov webhooks --data DIR" prints the record while provd is stopped.
// Deliveries still pending at shutdown are retried after the next start.
//
// # Caveats
//
// Delivery is at least once: a receiver may see a body twice (it carries
// the log index to deduplicate by). The first start with webhooks begins
// at the end of the log: earlier deliveries and disputes are not announced.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"go.etcd.io/bbolt"
)

const (
	rootBucket     = "provd-webhooks"
	metaBucket     = "meta"
	deliveryBucket = "deliveries"
	cursorKey      = "cursor"
)

// SignatureHeader carries the HMAC-SHA256 of the body.
const SignatureHeader = "X-Provtrail-Signature"

// The events announced.
const (
	EventDelivered = "delivered"
	EventDisputed  = "disputed"
)

// States of a delivery.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed" // every attempt failed
)

// Follower is what the hooks need of the Service (*provenance.Service).
type Follower interface {
	Accepted(ctx context.Context, from uint64, limit int) ([]provenance.Applied, uint64, error)
	WaitApplied(ctx context.Context, index uint64) error
}

// Config carries everything Hooks need.
type Config struct {
	DB      *bbolt.DB // the data directory's file; the caller closes it
	Service Follower
	Log     merkle.Log // for the checkpoint and proof in each body
	URLs    []string
	Secret  []byte
	// BaseURL is the base of the Digital Links in bodies.
	BaseURL string
	Logger  *slog.Logger
	Client  *http.Client // default: a client with a 10s timeout
	// Attempts bounds the tries per delivery (default 6). The n-th retry
	// waits Backoff * 2^(n-1), at most MaxBackoff (defaults 2s and 1m).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// Hooks announce deliveries and disputes to the configured URLs.
type Hooks struct {
	cfg Config
	log *slog.Logger
	sem chan struct{} // bounds concurrent POSTs
	wg  sync.WaitGroup
}

// A Delivery is one body for one URL, and every attempt to POST it.
type Delivery struct {
	ID       string          `json:"id"` // "index/hook", as X-Provtrail-Delivery says
	Hook     int             `json:"hook"`
	URL      string          `json:"url"`
	Event    string          `json:"event"`
	Item     string          `json:"item"`
	Index    uint64          `json:"index"`
	State    string          `json:"state"`
	Attempts []Attempt       `json:"attempts"`
	Body     json.RawMessage `json:"body"`
}

// An Attempt is one POST of a delivery.
type Attempt struct {
	Time   time.Time `json:"time"`
	Status int       `json:"status,omitempty"` // the HTTP status, 0 if none came
	Error  string    `json:"error,omitempty"`
}

// body is the JSON a hook receives.
type body struct {
	Event       string `json:"event"`
	Item        string `json:"item"`
	DigitalLink string `json:"digital_link"`
	Index       uint64 `json:"index"`
	LeafHash    string `json:"leaf_hash"`
	Time        string `json:"time"`
	Checkpoint  string `json:"checkpoint"`
	Proof       string `json:"proof"`
}

// New checks cfg and creates the delivery log's bucket.
func New(cfg Config) (*Hooks, error) {
	switch {
	case cfg.DB == nil || cfg.Service == nil || cfg.Log == nil:
		return nil, errors.New("webhook: config needs a database, a service and a log")
	case len(cfg.URLs) == 0:
		return nil, errors.New("webhook: no URLs")
	case len(cfg.Secret) == 0:
		return nil, errors.New("webhook: no secret")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 6
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if err := cfg.DB.Update(create); err != nil {
		return nil, fmt.Errorf("webhook: create bucket: %w", err)
	}
	return &Hooks{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, 8)}, nil
}

func create(tx *bbolt.Tx) error {
	root, err := tx.CreateBucketIfNotExists([]byte(rootBucket))
	if err != nil {
		return err
	}
	for _, name := range []string{metaBucket, deliveryBucket} {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	return nil
}

func bucket(tx *bbolt.Tx, name string) *bbolt.Bucket {
	return tx.Bucket([]byte(rootBucket)).Bucket([]byte(name))
}

func deliveryKey(index uint64, n int) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, index), uint32(n))
}

// Run follows the log and delivers until ctx ends, then waits for the
// POSTs under way to stop. It returns nil when ctx ends.
func (h *Hooks) Run(ctx context.Context) error {
	defer h.wg.Wait()
	cursor, pending, err := h.load(ctx)
	if err != nil {
		return err
	}
	for _, d := range pending {
		h.send(ctx, d)
	}
	for {
		events, next, err := h.cfg.Service.Accepted(ctx, cursor, 256)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			h.log.Error("webhook: follow the log", "from", cursor, "err", err)
			if sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		if next == cursor {
			if err := h.cfg.Service.WaitApplied(ctx, cursor); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("webhook: %w", err)
			}
			continue
		}
		ds, err := h.record(ctx, events, next)
		if err != nil {
			h.log.Error("webhook: record deliveries", "from", cursor, "err", err)
			if sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		cursor = next
		for _, d := range ds {
			h.send(ctx, d)
		}
	}
}

// load returns the position to follow from and the deliveries pending. On
// the first start it begins at the end of the log.
func (h *Hooks) load(ctx context.Context) (uint64, []Delivery, error) {
	cp, err := h.cfg.Log.Checkpoint(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("webhook: %w", err)
	}
	var cursor uint64
	var pending []Delivery
	err = h.cfg.DB.Update(func(tx *bbolt.Tx) error {
		meta := bucket(tx, metaBucket)
		if v := meta.Get([]byte(cursorKey)); len(v) == 8 {
			cursor = binary.BigEndian.Uint64(v)
		} else {
			cursor = cp.Size
			if err := meta.Put([]byte(cursorKey), binary.BigEndian.AppendUint64(nil, cursor)); err != nil {
				return err
			}
		}
		return bucket(tx, deliveryBucket).ForEach(func(k, v []byte) error {
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("delivery %x: %w", k, err)
			}
			if d.State == StatePending {
				pending = append(pending, d)
			}
			return nil
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("webhook: load: %w", err)
	}
	return cursor, pending, nil
}

// record makes the deliveries of events and saves them with the new
// cursor, in one transaction: an event is announced even if provd stops
// right after.
func (h *Hooks) record(ctx context.Context, events []provenance.Applied, next uint64) ([]Delivery, error) {
	var ds []Delivery
	for _, a := range events {
		var kind string
		switch {
		case a.Event.Kind == provenance.KindReceive && a.Role == provenance.RoleBuyer:
			kind = EventDelivered
		case a.Event.Kind == provenance.KindDispute:
			kind = EventDisputed
		default:
			continue
		}
		b, err := h.body(ctx, kind, a)
		if err != nil {
			return nil, err
		}
		for n, u := range h.cfg.URLs {
			ds = append(ds, Delivery{
				ID: fmt.Sprintf("%d/%d", a.Index, n), Hook: n, URL: u, Event: kind, Item: a.Event.Item.String(),
				Index: a.Index, State: StatePending, Body: b,
			})
		}
	}
	err := h.cfg.DB.Update(func(tx *bbolt.Tx) error {
		for i := range ds {
			if err := put(tx, &ds[i]); err != nil {
				return err
			}
		}
		return bucket(tx, metaBucket).Put([]byte(cursorKey), binary.BigEndian.AppendUint64(nil, next))
	})
	return ds, err
}

func put(tx *bbolt.Tx, d *Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return bucket(tx, deliveryBucket).Put(deliveryKey(d.Index, d.Hook), v)
}

func (h *Hooks) body(ctx context.Context, kind string, a provenance.Applied) ([]byte, error) {
	cp, err := h.cfg.Log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	p, err := h.cfg.Log.InclusionProof(ctx, a.Index, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("proof of %d: %w", a.Index, err)
	}
	return json.Marshal(body{
		Event: kind, Item: a.Event.Item.String(), DigitalLink: a.Event.Item.DigitalLink(h.cfg.BaseURL),
		Index: a.Index, LeafHash: a.LeafHash.String(), Time: a.Event.Time.UTC().Format(time.RFC3339),
		Checkpoint: string(cp.Note),
		Proof:      string(merkle.FormatProof(merkle.Proof{Index: a.Index, Hashes: p, Checkpoint: cp.Note})),
	})
}

// Sign returns the X-Provtrail-Signature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is the X-Provtrail-Signature of body under
// secret, in constant time: what a receiver checks.
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(sig), []byte(Sign(secret, body)))
}

// send POSTs d in the background, retrying, until it succeeds, runs out
// of attempts or ctx ends (it stays pending then, for the next start).
func (h *Hooks) send(ctx context.Context, d Delivery) {
	h.wg.Go(func() {
		for n := len(d.Attempts); n < h.cfg.Attempts; n++ {
			if n > 0 {
				wait := min(h.cfg.Backoff<<min(n-1, 20), h.cfg.MaxBackoff)
				if sleep(ctx, wait) != nil {
					return
				}
			}
			select {
			case h.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			at := h.post(ctx, d)
			<-h.sem
			if ctx.Err() != nil && at.Status == 0 {
				return // cut short by shutdown: not an attempt
			}
			d.Attempts = append(d.Attempts, at)
			switch {
			case at.Status >= 200 && at.Status < 300:
				d.State = StateDelivered
			case len(d.Attempts) >= h.cfg.Attempts:
				d.State = StateFailed
			}
			level := slog.LevelInfo
			if d.State != StateDelivered {
				level = slog.LevelWarn
			}
			h.log.Log(ctx, level, "webhook attempt", "delivery", d.ID, "url", d.URL, "event", d.Event,
				"item", d.Item, "index", d.Index, "attempt", len(d.Attempts), "status", at.Status, "err", at.Error, "state", d.State)
			if err := h.cfg.DB.Update(func(tx *bbolt.Tx) error { return put(tx, &d) }); err != nil {
				h.log.Error("webhook: record attempt", "delivery", d.ID, "err", err)
			}
			if d.State != StatePending {
				return
			}
		}
	})
}

func (h *Hooks) post(ctx context.Context, d Delivery) Attempt {
	at := Attempt{Time: time.Now().UTC()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		at.Error = err.Error()
		return at
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "provd-webhook/1")
	req.Header.Set(SignatureHeader, Sign(h.cfg.Secret, d.Body))
	req.Header.Set("X-Provtrail-Delivery", d.ID)
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		at.Error = err.Error()
		return at
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	at.Status = resp.StatusCode
	if at.Status < 200 || at.Status >= 300 {
		at.Error = resp.Status
	}
	return at
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadLog returns every delivery recorded in db, in log order: what "prov
// webhooks" prints. A database without webhooks has none.
func ReadLog(db *bbolt.DB) ([]Delivery, error) {
	var ds []Delivery
	err := db.View(func(tx *bbolt.Tx) error {
		root := tx.Bucket([]byte(rootBucket))
		if root == nil {
			return nil
		}
		return root.Bucket([]byte(deliveryBucket)).ForEach(func(k, v []byte) error {
			var d Delivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("delivery %x: %w", k, err)
			}
			ds = append(ds, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read the webhook delivery log: %w", err)
	}
	return ds, nil
}
