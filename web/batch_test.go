package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
	"github.com/provtrail/provtrail/web/api"
	"golang.org/x/mod/sumdb/note"
)

type batchResult struct {
	Status  int      `json:"status"`
	Receipt *receipt `json:"receipt"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type batchResponse struct {
	Accepted   int           `json:"accepted"`
	Duplicates int           `json:"duplicates"`
	Failed     int           `json:"failed"`
	Results    []batchResult `json:"results"`
}

// postBatch POSTs body to the batch route as contentType.
func (e *env) postBatch(contentType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/events/batch", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// logVerifier verifies the log's checkpoints.
func (e *env) logVerifier() note.Verifier {
	e.t.Helper()
	v, err := note.NewVerifier(e.node.Service.Trust().LogKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// batchBody is the JSON body of a batch of leaves.
func batchBody(t testing.TB, leaves ...[]byte) []byte {
	t.Helper()
	req := struct {
		Events []string `json:"events"`
	}{Events: []string{}}
	for _, l := range leaves {
		req.Events = append(req.Events, string(l))
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signChain signs an item's events ahead, each naming the one before as
// prev, as a client does that sends them in one batch.
type signChain struct {
	e    *env
	item provenance.ItemID
	prev merkle.Hash
}

func (c *signChain) next(ev provenance.Event) []byte {
	ev.Item, ev.Prev = c.item, c.prev
	leaf := c.e.sign(ev, c.e.keys[ev.Actor])
	c.prev = merkle.LeafHash(leaf)
	return leaf
}

func (c *signChain) register(by string) []byte {
	return c.next(provenance.Event{Kind: provenance.KindRegister, Actor: by, Place: "Shenzhen", Register: &provenance.Register{Product: "Batch bag"}})
}

func (c *signChain) handoff(by, to string) []byte {
	return c.next(provenance.Event{Kind: provenance.KindHandoff, Actor: by, Handoff: &provenance.Handoff{To: to}})
}

func (c *signChain) receive(by string) []byte {
	return c.next(provenance.Event{Kind: provenance.KindReceive, Actor: by, Place: "Hong Kong", Receive: &provenance.Receive{By: by}})
}

// TestBatch posts one batch of chains that must go in order, a refusal
// and the event after it, a duplicate, garbage and an oversize note, and
// checks each result, that each receipt verifies, and that only the
// accepted events were appended.
func TestBatch(t *testing.T) {
	e := newEnv(t, true)
	e.enroll("maker", provenance.RoleManufacturer, "Maker")
	e.enroll("courier", provenance.RoleCourier, "Courier")
	e.enroll("other", provenance.RoleCourier, "Other courier")

	var leaves [][]byte
	var items []provenance.ItemID
	for i := range 20 {
		c := &signChain{e: e, item: mustItem(t, gtin, fmt.Sprintf("BATCH%d", i))}
		items = append(items, c.item)
		leaves = append(leaves, c.register("maker"), c.handoff("maker", "courier"), c.receive("courier"))
	}
	bad := &signChain{e: e, item: mustItem(t, gtin, "BATCH-BAD")}
	leaves = append(leaves, bad.register("maker"), bad.handoff("other", "courier"), bad.receive("courier"))
	dup := (&signChain{e: e, item: mustItem(t, gtin, "BATCH-DUP")}).register("maker")
	leaves = append(leaves, dup, dup, []byte("not a signed note"), bytes.Repeat([]byte("x"), 64<<10+1))

	size := e.checkpointSize()
	resp, body := e.postBatch("application/json", batchBody(t, leaves...))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var br batchResponse
	if err := json.Unmarshal(body, &br); err != nil {
		t.Fatal(err)
	}
	if len(br.Results) != len(leaves) {
		t.Fatalf("%d results for %d events", len(br.Results), len(leaves))
	}
	want := func(i, status int, code string) {
		t.Helper()
		r := br.Results[i]
		got := ""
		if r.Error != nil {
			got = r.Error.Code
			if r.Error.Message == "" {
				t.Errorf("result %d: an error without a message", i)
			}
		}
		if r.Status != status || got != code {
			t.Errorf("result %d: %d %q, want %d %q (%+v)", i, r.Status, got, status, code, r.Error)
		}
		if (status == 200 || status == 201) != (r.Receipt != nil) {
			t.Errorf("result %d: status %d with receipt %v", i, r.Status, r.Receipt)
		}
	}
	for i := range 20 * 3 {
		want(i, http.StatusCreated, "")
		r := br.Results[i].Receipt
		if r == nil {
			continue
		}
		if r.LeafHash != merkle.LeafHash(leaves[i]).String() {
			t.Errorf("result %d names leaf %s", i, r.LeafHash)
		}
		if _, idx, err := merkle.VerifyProof([]byte(r.Proof), leaves[i], "id.example.com/log", e.logVerifier()); err != nil || idx != r.Index {
			t.Errorf("result %d: receipt does not verify: index %d, %v", i, idx, err)
		}
	}
	n := 20 * 3
	want(n, http.StatusCreated, "")
	want(n+1, http.StatusForbidden, "not_custodian")
	want(n+2, http.StatusFailedDependency, "not_attempted")
	want(n+3, http.StatusCreated, "")
	want(n+4, http.StatusOK, "")
	want(n+5, http.StatusBadRequest, "malformed_event")
	want(n+6, http.StatusRequestEntityTooLarge, "too_large")
	if br.Accepted != n+2 || br.Duplicates != 1 || br.Failed != 4 {
		t.Errorf("accepted %d, duplicates %d, failed %d; want %d, 1, 4", br.Accepted, br.Duplicates, br.Failed, n+2)
	}
	if got := e.checkpointSize(); got != size+uint64(n+2) {
		t.Errorf("log grew from %d to %d, want by the %d accepted", size, got, n+2)
	}
	for i, id := range items {
		if got, want := e.last(id), merkle.LeafHash(leaves[3*i+2]); got != want {
			t.Errorf("item %s: latest event %s, want its receive %s", id, got, want)
		}
		resp, page := e.get(id.DigitalLink(""))
		if rows := doc(t, page).Find(`[data-testid="event"]`).Length(); resp.StatusCode != http.StatusOK || rows != 3 {
			t.Errorf("history page of %s: %d, %d events shown, want 3", id, resp.StatusCode, rows)
		}
	}
	if got := e.metric(`provtrail_events_submitted_total{outcome="not_attempted"}`); got != "1" {
		t.Errorf("not attempted counted %q, want 1", got)
	}
}

// TestBatchBadRequests checks every bad batch is refused whole with a
// 4xx that says what is wrong, and appends nothing.
func TestBatchBadRequests(t *testing.T) {
	e := newEnv(t, true)
	e.enroll("maker", provenance.RoleManufacturer, "Maker")
	leaf := e.registerLeaf("maker", mustItem(t, gtin, "BADBATCH"), "P", "Shenzhen")
	many := make([][]byte, api.MaxBatch+1)
	for i := range many {
		many[i] = leaf
	}
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		code, msg         string
	}{
		{"text/plain", "text/plain", batchBody(t, leaf), 415, "unsupported_media_type", "send a batch as application/json"},
		{"no content type", "", batchBody(t, leaf), 415, "unsupported_media_type", "application/json"},
		{"not JSON", "application/json", []byte("hello"), 400, "bad_request", `a batch is a JSON object {"events"`},
		{"an array", "application/json", []byte(`["x"]`), 400, "bad_request", "cannot unmarshal array"},
		{"a number among the events", "application/json", []byte(`{"events":["x",1]}`), 400, "bad_request", "cannot unmarshal number"},
		{"unknown field", "application/json", []byte(`{"events":["x"],"atomic":true}`), 400, "bad_request", `unknown field "atomic"`},
		{"two objects", "application/json", []byte(`{"events":["x"]}{"events":["y"]}`), 400, "bad_request", "more data after the object"},
		{"no events field", "application/json", []byte(`{}`), 400, "bad_request", "a batch holds 1 to 1000 events; this one has none"},
		{"no events", "application/json", batchBody(t), 400, "bad_request", "this one has none"},
		{"1,001 events", "application/json", batchBody(t, many...), 413, "too_large", "a batch holds at most 1000 events; this one has 1001"},
		{"5 MiB body", "application/json", append(append([]byte(`{"events":["`), bytes.Repeat([]byte("a"), 5<<20)...), `"]}`...), 413, "too_large", "a batch is at most 4194304 bytes"},
		{"truncated", "application/json", batchBody(t, leaf)[:20], 400, "bad_request", "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := e.checkpointSize()
			resp, body := e.postBatch(tc.contentType, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var ae apiErr
			if err := json.Unmarshal(body, &ae); err != nil || ae.Error.Code != tc.code || !strings.Contains(ae.Error.Message, tc.msg) {
				t.Fatalf("error %s, want code %q saying %q", body, tc.code, tc.msg)
			}
			if got := e.checkpointSize(); got != size {
				t.Fatalf("log grew from %d to %d", size, got)
			}
		})
	}
	resp, body := e.get("/api/v1/events/batch")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET the batch route: %d, Allow %q: %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}

// TestBatchClientRate checks a batch is charged one token per event: a
// batch larger than the burst is refused whole (413), one within it is
// taken, and the next write finds the bucket empty (429).
func TestBatchClientRate(t *testing.T) {
	e, _ := newLimitedEnv(t, web.WriteLimits{ClientRate: 0.1, ClientBurst: 3}, nil)
	e.direct(e.sign(enrollEvent(e, "maker", provenance.RoleManufacturer), e.node.Operator))
	reg := func(serial string) []byte {
		return e.registerLeaf("maker", mustItem(t, gtin, serial), "Rate", "Shenzhen")
	}
	size := e.checkpointSize()
	resp, body := e.postBatch("application/json", batchBody(t, reg("R1"), reg("R2"), reg("R3"), reg("R4")))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "a batch of 4 events is more than this server lets one client send at once (3); send smaller batches") {
		t.Fatalf("a batch over the burst: %d %s", resp.StatusCode, body)
	}
	if got := e.checkpointSize(); got != size {
		t.Fatalf("log grew from %d to %d", size, got)
	}
	resp, body = e.postBatch("application/json", batchBody(t, reg("R1"), reg("R2"), reg("R3")))
	var br batchResponse
	if err := json.Unmarshal(body, &br); resp.StatusCode != http.StatusOK || err != nil || br.Accepted != 3 {
		t.Fatalf("a batch within the burst: %d %s", resp.StatusCode, body)
	}
	resp, body = e.postBatch("application/json", batchBody(t, reg("R5")))
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "this client sends more than 0.1 events/s (bursts of 3)", resp, body)
	resp, body = e.postFrom(reg("R5"))
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "events/s", resp, body)
	if got := e.checkpointSize(); got != size+3 {
		t.Errorf("log size %d, want %d", got, size+3)
	}
}

// TestBatchOverload checks a batch's events each need a write slot: while
// the only one is held, each is answered 503 overloaded within the batch,
// with Retry-After, and nothing is appended.
func TestBatchOverload(t *testing.T) {
	e, svc := newLimitedEnv(t, web.WriteLimits{MaxInFlight: 1, MaxQueued: 1, QueueWait: 50 * time.Millisecond}, nil)
	e.direct(e.sign(enrollEvent(e, "maker", provenance.RoleManufacturer), e.node.Operator))
	size := e.checkpointSize()
	open := svc.hold()
	defer open()
	first := make(chan int)
	go func() {
		resp, _ := e.postFrom(e.registerLeaf("maker", mustItem(t, gtin, "HELD"), "Held", "Shenzhen"))
		first <- resp.StatusCode
	}()
	<-svc.entered
	leaves := [][]byte{
		e.registerLeaf("maker", mustItem(t, gtin, "OB1"), "P", "Shenzhen"),
		e.registerLeaf("maker", mustItem(t, gtin, "OB2"), "P", "Shenzhen"),
	}
	resp, body := e.postBatch("application/json", batchBody(t, leaves...))
	var br batchResponse
	if err := json.Unmarshal(body, &br); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for i, r := range br.Results {
		if r.Status != http.StatusServiceUnavailable || r.Error == nil || r.Error.Code != "overloaded" {
			t.Errorf("result %d: %+v, want 503 overloaded", i, r)
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	if got := e.checkpointSize(); got != size {
		t.Errorf("log grew from %d to %d while the slot was held", size, got)
	}
	open()
	if s := <-first; s != http.StatusCreated {
		t.Fatalf("held write: %d", s)
	}
	resp, body = e.postBatch("application/json", batchBody(t, leaves...))
	if err := json.Unmarshal(body, &br); resp.StatusCode != http.StatusOK || err != nil || br.Accepted != 2 {
		t.Fatalf("once the slot is free: %d %s", resp.StatusCode, body)
	}
}
