package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/cmd/internal/webhook"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// hookBody is what a webhook receives.
type hookBody struct {
	Event       string `json:"event"`
	Item        string `json:"item"`
	DigitalLink string `json:"digital_link"`
	Index       uint64 `json:"index"`
	LeafHash    string `json:"leaf_hash"`
	Time        string `json:"time"`
	Checkpoint  string `json:"checkpoint"`
	Proof       string `json:"proof"`
}

// TestWebhooks delivers an item to a buyer and disputes it; the receiver
// checks each body's HMAC and fails the first two attempts of each.
func TestWebhooks(t *testing.T) {
	const secret = "s3cret-shared-with-the-escrow"
	var mu sync.Mutex
	tries := map[string]int{}
	got := map[string]hookBody{}
	leaves := map[uint64]bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		if r.Header.Get("X-Provtrail-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("bad signature %q on %s", r.Header.Get("X-Provtrail-Signature"), b)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("X-Provtrail-Delivery")
		mu.Lock()
		defer mu.Unlock()
		tries[id]++
		if tries[id] <= 2 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		var hb hookBody
		if err := json.Unmarshal(b, &hb); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		got[hb.Event] = hb
		leaves[hb.Index] = true
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	data := filepath.Join(t.TempDir(), "data")
	s := startProvd(t, data, "--webhook", recv.URL+"/escrow", "--webhook-secret-file", writeSecret(t, secret, 0o600),
		"--webhook-backoff", "20ms", "--webhook-attempts", "4")
	k := newKeys(t, data)
	s.submit(k.enroll("maker", provenance.RoleManufacturer))
	item := mustItem(t, "HOOK1")
	prev := s.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item,
		Register: &provenance.Register{Product: "Tote"}})).LeafHash
	code, h, err := provenance.NewClaim(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	prev = s.submit(k.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: item, Prev: hash(t, prev), Handoff: &h})).LeafHash
	buyer := k.signer(provenance.BuyerID)
	receive := k.sign(provenance.Event{Kind: provenance.KindReceive, Actor: provenance.BuyerID, Item: item, Prev: hash(t, prev),
		Receive: &provenance.Receive{ClaimCode: code, BuyerKey: k.vkeys[provenance.BuyerID]}})
	r := s.submit(receive)
	dispute := k.sign(provenance.Event{Kind: provenance.KindDispute, Actor: buyer.Name(), Item: item, Prev: hash(t, r.LeafHash),
		Dispute: &provenance.Dispute{Reason: "not what was ordered"}})
	s.submit(dispute)

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhooks received %d of 2 events; tries %v", n, tries)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	d, disp := got[webhook.EventDelivered], got[webhook.EventDisputed]
	mu.Unlock()
	if d.Item != item.String() || d.DigitalLink != item.DigitalLink(s.url) || d.Index != r.Index || d.LeafHash != r.LeafHash || d.Time == "" {
		t.Errorf("delivered body %+v", d)
	}
	v, _ := note.NewVerifier(s.keys.LogKey)
	if _, idx, err := merkle.VerifyProof([]byte(d.Proof), receive, s.keys.Origin, v); err != nil || idx != d.Index {
		t.Errorf("the delivered body's proof does not verify: %v", err)
	}
	if disp.Index != r.Index+1 || disp.Item != item.String() {
		t.Errorf("disputed body %+v", disp)
	}
	if _, _, err := merkle.VerifyProof([]byte(disp.Proof), dispute, s.keys.Origin, v); err != nil {
		t.Errorf("the disputed body's proof does not verify: %v", err)
	}
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}

	// The delivery log records every attempt.
	n, err := datadir.Open(t.Context(), datadir.Config{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ds, err := webhook.ReadLog(n.DB)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("delivery log has %d deliveries, want 2", len(ds))
	}
	for _, d := range ds {
		if d.State != webhook.StateDelivered || len(d.Attempts) != 3 || d.Attempts[0].Status != 503 || d.Attempts[2].Status != 204 {
			t.Errorf("delivery %s: state %s, attempts %+v", d.ID, d.State, d.Attempts)
		}
	}
}

func hash(t testing.TB, s string) merkle.Hash {
	t.Helper()
	h, err := merkle.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
