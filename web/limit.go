package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// WriteLimits bound the event submissions (POST /api/v1/events) the
// server takes on: how many are checked and appended at once, how many
// wait for their turn and for how long, and how fast one client may send.
// A write past capacity is answered 503 (code "overloaded") and one past
// its client's rate 429 (code "rate_limited"), both with Retry-After and
// before anything is appended. Reads are never limited.
//
// A zero field takes its default; a negative one is an error.
type WriteLimits struct {
	// MaxInFlight is how many submissions are checked and appended at
	// once (default 1024).
	MaxInFlight int
	// MaxQueued is how many more may wait for one of those slots
	// (default MaxInFlight). A write that finds the queue full is turned
	// away at once.
	MaxQueued int
	// QueueWait is how long a write waits for a slot before it is turned
	// away (default 1s).
	QueueWait time.Duration
	// ClientRate is how many events per second one client may send, on
	// average (a token bucket); 0 means no limit per client. A client is
	// an IPv4 address or an IPv6 /64, as the request came from or, from a
	// trusted proxy (Config.TrustedProxies), as X-Forwarded-For names it.
	ClientRate float64
	// ClientBurst is how many events a client may send at once, above
	// ClientRate (default: one second's worth, at least 1).
	ClientBurst int
}

// Defaults of WriteLimits.
const (
	DefaultMaxInFlight = 1024
	DefaultQueueWait   = time.Second
)

// maxClients bounds how many clients' rate limiters are kept. Past it,
// idle ones are dropped first (a full bucket is a fresh limiter), then
// any.
const maxClients = 1 << 16

// withDefaults fills in the zero fields and checks the others.
func (l WriteLimits) withDefaults() (WriteLimits, error) {
	switch {
	case l.MaxInFlight < 0:
		return l, fmt.Errorf("MaxInFlight %d: must not be negative", l.MaxInFlight)
	case l.MaxQueued < 0:
		return l, fmt.Errorf("MaxQueued %d: must not be negative", l.MaxQueued)
	case l.QueueWait < 0:
		return l, fmt.Errorf("QueueWait %v: must not be negative", l.QueueWait)
	case l.ClientRate < 0 || math.IsNaN(l.ClientRate) || math.IsInf(l.ClientRate, 0):
		return l, fmt.Errorf("ClientRate %v: must be a number of events per second, 0 or more", l.ClientRate)
	case l.ClientBurst < 0:
		return l, fmt.Errorf("ClientBurst %d: must not be negative", l.ClientBurst)
	}
	if l.MaxInFlight == 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.MaxQueued == 0 {
		l.MaxQueued = l.MaxInFlight
	}
	if l.QueueWait == 0 {
		l.QueueWait = DefaultQueueWait
	}
	if l.ClientRate > 0 && l.ClientBurst == 0 {
		l.ClientBurst = max(1, int(math.Ceil(l.ClientRate)))
	}
	return l, nil
}

// An admission lets at most cap(slots) writes run at once, and at most
// cap(queue) more wait up to wait for a slot.
type admission struct {
	slots chan struct{}
	queue chan struct{}
	wait  time.Duration
}

func newAdmission(l WriteLimits) *admission {
	return &admission{slots: make(chan struct{}, l.MaxInFlight), queue: make(chan struct{}, l.MaxQueued), wait: l.QueueWait}
}

// errOverloaded is why a write was turned away: every slot stayed busy.
var errOverloaded = errors.New("server at capacity")

// acquire takes a slot, waiting in the queue if there is room in it, and
// returns the function that gives the slot back. It fails with
// errOverloaded when the queue is full or the wait is over, or with
// ctx's error.
func (a *admission) acquire(ctx context.Context) (release func(), err error) {
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	default:
	}
	select {
	case a.queue <- struct{}{}:
	default:
		return nil, errOverloaded
	}
	defer func() { <-a.queue }()
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	case <-t.C:
		return nil, errOverloaded
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *admission) release() { <-a.slots }

// clientLimits keeps one token bucket per client.
type clientLimits struct {
	limit rate.Limit
	burst int
	max   int           // clients kept at most
	every time.Duration // how often idle limiters are swept out

	mu      sync.Mutex
	clients map[string]*rate.Limiter
	swept   time.Time
}

func newClientLimits(l WriteLimits) *clientLimits {
	if l.ClientRate == 0 {
		return nil
	}
	// A bucket refills in burst/rate; sweeping more often finds few full.
	every := max(time.Second, time.Duration(float64(l.ClientBurst)/l.ClientRate*float64(time.Second)))
	return &clientLimits{limit: rate.Limit(l.ClientRate), burst: l.ClientBurst, max: maxClients, every: every,
		clients: map[string]*rate.Limiter{}}
}

// allow takes one token of client's bucket at now. If there is none, it
// returns how long until there is.
func (c *clientLimits) allow(client string, now time.Time) (ok bool, wait time.Duration) {
	return c.allowN(client, now, 1)
}

// peek reports whether client has a token at now, taking none, and if
// not, how long until it has.
func (c *clientLimits) peek(client string, now time.Time) (ok bool, wait time.Duration) {
	lim := c.limiter(client, now)
	if lim.TokensAt(now) < 1 {
		return false, c.until(lim, now, 1)
	}
	return true, 0
}

// allowN takes n tokens of client's bucket at now, or none. If there are
// not n, it returns how long until there are; n must be at most c.burst.
func (c *clientLimits) allowN(client string, now time.Time, n int) (ok bool, wait time.Duration) {
	lim := c.limiter(client, now)
	if lim.AllowN(now, n) {
		return true, 0
	}
	return false, c.until(lim, now, n)
}

// until is how long from now until lim holds n tokens.
func (c *clientLimits) until(lim *rate.Limiter, now time.Time, n int) time.Duration {
	missing := float64(n) - lim.TokensAt(now)
	return time.Duration(missing / float64(c.limit) * float64(time.Second))
}

// limiter returns client's limiter, made anew if there is none. It keeps
// the map within c.max: full buckets are dropped (a client not seen for
// that long is as good as new), and if that is not enough, an arbitrary
// one.
func (c *clientLimits) limiter(client string, now time.Time) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lim, ok := c.clients[client]; ok {
		return lim
	}
	if len(c.clients) >= c.max || now.Sub(c.swept) >= c.every {
		c.sweep(now)
	}
	for k := range c.clients {
		if len(c.clients) < c.max {
			break
		}
		delete(c.clients, k)
	}
	lim := rate.NewLimiter(c.limit, c.burst)
	c.clients[client] = lim
	return lim
}

// sweep drops the limiters whose buckets are full again, at most once per
// c.every.
func (c *clientLimits) sweep(now time.Time) {
	if now.Sub(c.swept) < c.every {
		return
	}
	c.swept = now
	for k, lim := range c.clients {
		if lim.TokensAt(now) >= float64(c.burst) {
			delete(c.clients, k)
		}
	}
}

// len returns how many clients have a limiter.
func (c *clientLimits) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clients)
}

// clientKey names the client at ip (as gin's ClientIP says it) for rate
// limiting: an IPv4 address, or the /64 of an IPv6 one (one site's
// share, which a client can change at will within).
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// retryAfter is the Retry-After value for a wait of d: whole seconds,
// rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}
