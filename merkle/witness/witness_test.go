package witness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

const origin = "witness.test/log"

type testLog struct {
	log    *boltlog.Log
	vkey   string
	signer note.Signer
}

// newLog opens a real bbolt log signed by skey (a fresh key if empty).
func newLog(t *testing.T, skey string) *testLog {
	t.Helper()
	var err error
	if skey == "" {
		if skey, _, err = merkle.GenerateKey(origin); err != nil {
			t.Fatal(err)
		}
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := merkle.VerifierKey(skey)
	db, err := boltlog.OpenDB(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := boltlog.Open(t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	return &testLog{log: l, vkey: vkey, signer: s}
}

func (l *testLog) grow(t *testing.T, tag string, n int) merkle.Checkpoint {
	t.Helper()
	var leaves [][]byte
	for i := range n {
		leaves = append(leaves, fmt.Appendf(nil, "%s %d", tag, i))
	}
	if _, err := l.log.Append(t.Context(), leaves); err != nil {
		t.Fatal(err)
	}
	cp, err := l.log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func (l *testLog) prove(ctx context.Context, old uint64) ([]merkle.Hash, error) {
	cp, err := l.log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	return l.log.ConsistencyProof(ctx, old, cp.Size)
}

// newWitness returns a witness of logVkey with a fresh key, served by
// httptest, and its cosignature verifier key.
func newWitness(t *testing.T, logVkey, statePath string) (*httptest.Server, string) {
	t.Helper()
	skeyPath := filepath.Join(t.TempDir(), "witness.key")
	if _, err := merkle.CreateKeyFile(skeyPath, "witness.test/w1"); err != nil {
		t.Fatal(err)
	}
	return newWitnessFromKey(t, skeyPath, logVkey, statePath)
}

func newWitnessFromKey(t *testing.T, skeyPath, logVkey, statePath string) (*httptest.Server, string) {
	t.Helper()
	b, err := os.ReadFile(skeyPath)
	if err != nil {
		t.Fatal(err)
	}
	skey := strings.TrimSpace(string(b))
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := merkle.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(logVkey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Signer: s, Logs: []note.Verifier{lv}, StatePath: statePath})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return srv, cvkey
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestWitnessCosignsGrowthAndRefusesForks(t *testing.T) {
	ctx := t.Context()
	lg := newLog(t, "")
	state := filepath.Join(t.TempDir(), "state.json")
	srv, wkey := newWitness(t, lg.vkey, state)
	policy, err := merkle.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w1 %s\nquorum w1\n", lg.vkey, wkey))
	if err != nil {
		t.Fatal(err)
	}

	cp1 := lg.grow(t, "a", 10)
	if _, err := policy.Verify(cp1.Note); !errors.Is(err, merkle.ErrPolicy) {
		t.Fatalf("an uncosigned checkpoint met the quorum: %v", err)
	}
	cosigned, err := Cosign(ctx, srv.Client(), srv.URL, cp1, 0, lg.prove)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := policy.Verify(cosigned); err != nil || got.Size != cp1.Size {
		t.Fatalf("cosigned checkpoint does not meet the policy: %v", err)
	}

	cp2 := lg.grow(t, "b", 7)
	// The log forgot what the witness saw: the witness answers 409 with its
	// size, and Cosign proves from there.
	if _, err := Cosign(ctx, srv.Client(), srv.URL, cp2, 0, lg.prove); err != nil {
		t.Fatalf("growth with a consistency proof: %v", err)
	}

	// A fork: the log's key signs another tree of cp2's size.
	impostor := newLog(t, "") // same origin, another key
	forked := signLike(t, lg, cp2.Size, merkle.LeafHash([]byte("not the real root")))
	if code, body := post(t, srv.URL, fmt.Sprintf("old %d\n\n%s", cp2.Size, forked)); code != http.StatusConflict {
		t.Fatalf("fork of the same size: %d %s", code, body)
	}
	// A larger tree that does not extend cp2.
	bad := signLike(t, lg, cp2.Size+5, merkle.LeafHash([]byte("elsewhere")))
	p, err := lg.log.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	var proof strings.Builder
	for _, h := range p {
		fmt.Fprintf(&proof, "%s\n", h)
	}
	if code, body := post(t, srv.URL, fmt.Sprintf("old %d\n%s\n%s", cp2.Size, proof.String(), bad)); code != http.StatusUnprocessableEntity {
		t.Fatalf("inconsistent larger tree: %d %s", code, body)
	}
	// A rollback: the older checkpoint again.
	if code, body := post(t, srv.URL, fmt.Sprintf("old %d\n\n%s", cp1.Size, cp1.Note)); code != http.StatusConflict || strings.TrimSpace(body) != fmt.Sprint(cp2.Size) {
		t.Fatalf("rollback: %d %q", code, body)
	}
	for name, tc := range map[string]struct {
		body string
		want int
	}{
		"same origin, other key": {fmt.Sprintf("old 0\n\n%s", impostor.grow(t, "x", 1).Note), http.StatusForbidden},
		"old above size":         {fmt.Sprintf("old %d\n\n%s", cp2.Size+1, cp2.Note), http.StatusBadRequest},
		"no empty line":          {"old 0\n", http.StatusBadRequest},
		"leading zero":           {fmt.Sprintf("old 017\n\n%s", cp2.Note), http.StatusBadRequest},
		"not a hash":             {fmt.Sprintf("old %d\nnot-base64\n\n%s", cp2.Size, cp2.Note), http.StatusBadRequest},
		"other origin entirely":  {"old 0\n\nsomewhere.else/log\n1\n" + merkle.EmptyRoot().String() + "\n\n— somewhere.else/log AAAA\n", http.StatusNotFound},
	} {
		if code, body := post(t, srv.URL, tc.body); code != tc.want {
			t.Errorf("%s: got %d %q, want %d", name, code, body, tc.want)
		}
	}

	// The state survives a restart: the new witness still remembers cp2.
	srv2, _ := newWitness(t, lg.vkey, state)
	if code, body := post(t, srv2.URL, fmt.Sprintf("old 0\n\n%s", cp1.Note)); code != http.StatusConflict || strings.TrimSpace(body) != fmt.Sprint(cp2.Size) {
		t.Fatalf("after restart: %d %q", code, body)
	}
}

// signLike signs an arbitrary checkpoint with the log's own key: what a
// misbehaving log operator could do.
func signLike(t *testing.T, l *testLog, size uint64, root merkle.Hash) []byte {
	t.Helper()
	cp, err := merkle.SignCheckpoint(l.signer, origin, size, root)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Note
}
