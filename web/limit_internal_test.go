package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"disk full", fmt.Errorf("append event: %w", &os.PathError{Op: "write", Path: "provtrail.db", Err: syscall.ENOSPC}), 503, "storage_full"},
		{"quota", fmt.Errorf("commit: %w", syscall.EDQUOT), 503, "storage_full"},
		{"file too large", &os.PathError{Op: "truncate", Path: "provtrail.db", Err: syscall.EFBIG}, 503, "storage_full"},
		{"other I/O error", &os.PathError{Op: "write", Path: "provtrail.db", Err: syscall.EIO}, 500, "internal"},
		{"plain error", errors.New("no space left on device"), 500, "internal"}, // never matched by string
		{"domain error", fmt.Errorf("history: %w", provenance.ErrNotFound), 404, "not_found"},
		{"too large", &http.MaxBytesError{Limit: 1}, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := classify(tc.err); status != tc.status || code != tc.code {
				t.Errorf("classify(%v) = %d %s, want %d %s", tc.err, status, code, tc.status, tc.code)
			}
		})
	}
}

func TestAdmission(t *testing.T) {
	ctx := t.Context()
	a := newAdmission(WriteLimits{MaxInFlight: 2, MaxQueued: 1, QueueWait: 20 * time.Millisecond})
	r1, err1 := a.acquire(ctx)
	r2, err2 := a.acquire(ctx)
	if err1 != nil || err2 != nil {
		t.Fatalf("two free slots: %v, %v", err1, err2)
	}
	// Both slots taken: the next waits its 20 ms and is turned away.
	start := time.Now()
	if _, err := a.acquire(ctx); !errors.Is(err, errOverloaded) {
		t.Fatalf("third: %v, want errOverloaded", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("turned away after %v, before the queue wait", d)
	}
	r1()
	r2()
	if len(a.slots) != 0 || len(a.queue) != 0 {
		t.Errorf("%d slots and %d queue places still taken", len(a.slots), len(a.queue))
	}

	// One waits in the queue; another finds the queue full and is turned
	// away at once; the waiter gets the slot when it is given back.
	a = newAdmission(WriteLimits{MaxInFlight: 1, MaxQueued: 1, QueueWait: 10 * time.Second})
	r, err := a.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error)
	go func() {
		r, err := a.acquire(ctx)
		if err == nil {
			r()
		}
		got <- err
	}()
	for len(a.queue) == 0 {
		time.Sleep(time.Millisecond)
	}
	start = time.Now()
	if _, err := a.acquire(ctx); !errors.Is(err, errOverloaded) || time.Since(start) > time.Second {
		t.Errorf("with the queue full: %v after %v, want errOverloaded at once", err, time.Since(start))
	}
	r()
	if err := <-got; err != nil {
		t.Errorf("the waiter: %v", err)
	}

	// A client gone while it waits.
	r, _ = a.acquire(ctx)
	defer r()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.acquire(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestClientLimits(t *testing.T) {
	l, err := WriteLimits{ClientRate: 1, ClientBurst: 2}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	c := newClientLimits(l)
	now := time.Unix(1e9, 0)
	for i := range 2 {
		if ok, _ := c.allow("192.0.2.1", now); !ok {
			t.Fatalf("event %d of a burst of 2 refused", i+1)
		}
	}
	ok, wait := c.allow("192.0.2.1", now)
	if ok || wait != time.Second {
		t.Errorf("third event: %v, wait %v; want refused, wait 1s", ok, wait)
	}
	if ok, wait := c.allow("192.0.2.1", now.Add(400*time.Millisecond)); ok || retryAfter(wait) != "1" {
		t.Errorf("0.4 s later: %v, Retry-After %s; want refused, 1", ok, retryAfter(wait))
	}
	if ok, _ := c.allow("192.0.2.1", now.Add(time.Second)); !ok {
		t.Error("a second later, a token: refused")
	}
	if ok, _ := c.allow("192.0.2.2", now); !ok {
		t.Error("another client refused")
	}

	// The map stays within max: full buckets go first, then any.
	c.max = 4
	for i := range 10 {
		c.allow("198.51.100."+strconv.Itoa(i), now.Add(time.Hour+time.Duration(i)*time.Millisecond))
		if n := c.len(); n > c.max {
			t.Fatalf("%d limiters kept, want at most %d", n, c.max)
		}
	}
	// After a sweep, a client whose bucket refilled was dropped, and one
	// that just spent a token is kept.
	// Sweeps come every 2 s (the time a bucket of 2 takes to refill at
	// 1/s).
	c = newClientLimits(l)
	c.allow("192.0.2.1", now)                            // sweeps (the first), keeps 1 token
	c.allow("192.0.2.2", now.Add(1500*time.Millisecond)) // no sweep yet
	if c.len() != 2 {
		t.Errorf("before a sweep: %d limiters, want 2", c.len())
	}
	c.allow("192.0.2.3", now.Add(2200*time.Millisecond)) // sweeps: 192.0.2.1's bucket is full again, 192.0.2.2's not
	_, kept1 := c.clients["192.0.2.1"]
	_, kept2 := c.clients["192.0.2.2"]
	if kept1 || !kept2 || c.len() != 2 {
		t.Errorf("after a sweep: %d limiters; the refilled one kept %v, the other %v", c.len(), kept1, kept2)
	}

	if newClientLimits(WriteLimits{}) != nil {
		t.Error("no rate: limits made anyway")
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                "192.0.2.1",
		"::ffff:192.0.2.1":         "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":     "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"fe80::1%eth0":             "fe80::/64",
		"":                         "",
		"not an address":           "not an address",
		"2001:db8::1, 192.0.2.200": "2001:db8::1, 192.0.2.200",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteLimitsDefaults(t *testing.T) {
	l, err := WriteLimits{}.withDefaults()
	if err != nil || l != (WriteLimits{MaxInFlight: 1024, MaxQueued: 1024, QueueWait: time.Second}) {
		t.Errorf("defaults: %+v, %v", l, err)
	}
	l, err = WriteLimits{MaxInFlight: 8, ClientRate: 2.5}.withDefaults()
	if err != nil || l.MaxQueued != 8 || l.ClientBurst != 3 {
		t.Errorf("queue and burst defaults: %+v, %v", l, err)
	}
	l, _ = WriteLimits{ClientRate: 0.1}.withDefaults()
	if l.ClientBurst != 1 {
		t.Errorf("burst of a slow rate: %d, want 1", l.ClientBurst)
	}
}
