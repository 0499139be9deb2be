package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

const testGTIN = "9506000134352" // GTIN-13, check digit 2

// TestScenario walks an item from its manufacturer to a buyer, then
// verifies its bundle offline with the right keys and the wrong ones.
func TestScenario(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	courier := w.enroll("courier-x", "courier", "Swift Couriers")
	shop := w.enroll("shop", "reseller", "Corner Shop")

	r := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair", "--lot", "L42", "--place", "Shenzhen").ok(t)
	item := r.line()
	if !strings.HasPrefix(item, defaultBase+"/01/09506000134352/21/") || strings.Contains(item, "\n") {
		t.Fatalf("register printed %q, want one Digital Link", r.stdout)
	}
	id, err := provenance.ParseDigitalLink(item)
	if err != nil {
		t.Fatal(err)
	}

	r = w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair", "--count", "20", "--base", "https://id.example.com/").ok(t)
	links := strings.Fields(r.stdout)
	seen := map[string]bool{}
	for _, l := range links {
		if _, err := provenance.ParseDigitalLink(l); err != nil || !strings.HasPrefix(l, "https://id.example.com/01/") {
			t.Errorf("register --count printed %q: %v", l, err)
		}
		seen[l] = true
	}
	if len(links) != 20 || len(seen) != 20 {
		t.Errorf("register --count 20 printed %d links, %d distinct, want 20", len(links), len(seen))
	}
	if !strings.Contains(r.stderr, "registered 20 items") {
		t.Errorf("register --count 20: stderr %q has no summary", r.stderr)
	}
	if got := w.logSize(); got != 3+1+20 {
		t.Errorf("log size %d after 3 enrollments and 21 registrations", got)
	}

	w.prov("handoff", "--key", acme, "--item", item, "--to", "courier-x", "--place", "Shenzhen").ok(t)
	w.prov("receive", "--key", courier, "--item", item, "--place", "Hong Kong").ok(t)
	// The item can be named by its path or its id, too.
	w.prov("handoff", "--key", courier, "--item", "/01/09506000134352/21/"+id.Serial, "--to", "shop").ok(t)
	w.prov("receive", "--key", shop, "--item", id.String(), "--place", "Singapore").ok(t)
	r = w.prov("handoff", "--key", shop, "--item", item, "--claim").ok(t)
	code := r.line()
	if len(code) != 20 || strings.ContainsAny(code, " \n") {
		t.Fatalf("handoff --claim printed %q, want a 20-character claim code", r.stdout)
	}
	w.prov("receive", "--item", item, "--claim-code", code).ok(t)

	hist := w.prov("history", "--item", item).ok(t).stdout
	for _, want := range []string{
		"status:      delivered to a buyer on",
		"register  Acme Ltd (acme, manufacturer)",
		"to Swift Couriers (courier-x)",
		"Corner Shop (shop, reseller)",
		"to a buyer by claim code",
		"buyer (one-off key)",
	} {
		if !strings.Contains(hist, want) {
			t.Errorf("history does not show %q:\n%s", want, hist)
		}
	}
	var hj historyJSON
	if err := json.Unmarshal([]byte(w.prov("history", "--item", item, "--json").ok(t).stdout), &hj); err != nil {
		t.Fatal(err)
	}
	if hj.Status != string(provenance.StatusDelivered) || len(hj.Events) != 7 || hj.Item != id.String() {
		t.Errorf("history --json: status %q, %d events, item %q", hj.Status, len(hj.Events), hj.Item)
	}

	bundle := w.path("chair.json")
	w.prov("bundle", "--item", item, "--out", bundle).ok(t)

	origin, logKey, opKey := w.trust()
	otherLog := newVKey(t, origin)
	otherOp := newVKey(t, provenance.OperatorID)

	r = prov(t, "verify", "--bundle", bundle, "--log-key", logKey, "--operator-key", opKey).ok(t)
	if !strings.Contains(r.stdout, "delivered to a buyer") || !strings.Contains(r.stdout, "offline, against the pinned") {
		t.Errorf("verify printed:\n%s", r.stdout)
	}
	prov(t, "verify", "--bundle", bundle, "--origin", origin, "--log-key", logKey, "--operator-key", opKey).ok(t)
	policy := w.path("trust.policy")
	writeFile(t, policy, []byte(w.prov("keys", "--policy").ok(t).stdout))
	prov(t, "verify", "--bundle", bundle, "--policy", policy).ok(t)

	prov(t, "verify", "--bundle", bundle, "--log-key", otherLog, "--operator-key", opKey).
		fails(t, exitFail, "not the pinned one")
	prov(t, "verify", "--bundle", bundle, "--log-key", logKey, "--operator-key", otherOp).
		fails(t, exitFail, "not the pinned one")
	prov(t, "verify", "--bundle", bundle, "--origin", "other.example/log", "--log-key", logKey, "--operator-key", opKey).
		fails(t, exitFail, "made for log")

	// One flipped byte anywhere fails, with exit 1 and a message.
	good := readFile(t, bundle)
	tampered := w.path("tampered.json")
	for i := 0; i < len(good); i += max(1, len(good)/97) {
		b := []byte(string(good))
		b[i] ^= 0x01
		writeFile(t, tampered, b)
		r := prov(t, "verify", "--bundle", tampered, "--log-key", logKey, "--operator-key", opKey)
		r.fails(t, exitFail, "does NOT verify")
		if t.Failed() {
			t.Fatalf("flipping byte %d (%q)", i, good[i])
		}
	}

	// The index can be rebuilt from the log, and says the same.
	size := w.logSize()
	r = w.prov("rebuild").ok(t)
	if want := "replayed " + strconv.FormatUint(size, 10) + " log positions"; !strings.Contains(r.stdout, want) {
		t.Errorf("rebuild printed %q, want %q", r.stdout, want)
	}
	if again := w.prov("history", "--item", item).ok(t).stdout; again != hist {
		t.Errorf("history after rebuild:\n%s\nbefore:\n%s", again, hist)
	}
}

// TestDisputeAndRuling disputes a delivered item as its buyer, with
// evidence, and rules on it.
func TestDisputeAndRuling(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	item := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair").ok(t).line()
	code := w.prov("handoff", "--key", acme, "--item", item, "--claim").ok(t).line()
	buyer := w.path("buyer.key")
	w.prov("receive", "--item", item, "--claim-code", code, "--save-key", buyer).ok(t)

	photo := w.path("seal.jpg")
	writeFile(t, photo, []byte("not really a photo"))
	w.prov("dispute", "--key", buyer, "--item", item, "--reason", "seal broken", "--evidence", photo, "--evidence", photo).ok(t)
	if h := w.prov("history", "--item", item).ok(t).stdout; !strings.Contains(h, "disputed by a buyer") || !strings.Contains(h, "seal broken (2 evidence hashes)") {
		t.Errorf("history of a disputed item:\n%s", h)
	}
	var hj historyJSON
	if err := json.Unmarshal([]byte(w.prov("history", "--item", item, "--json").ok(t).stdout), &hj); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not really a photo"))
	want := hex.EncodeToString(sum[:])
	if ev := hj.Events[len(hj.Events)-1]; ev.Dispute == nil || len(ev.Dispute.Evidence) != 2 || ev.Dispute.Evidence[0] != want {
		t.Errorf("dispute event: %+v, want evidence %s twice", ev.Dispute, want)
	}
	w.prov("ruling", "--item", item, "--decision", "seal replaced in transit; item genuine").ok(t)
	if h := w.prov("history", "--item", item).ok(t).stdout; !strings.Contains(h, "status:      delivered") {
		t.Errorf("history after the ruling:\n%s", h)
	}
}

// TestBadInput checks that every bad input gets one plain line on stderr,
// a non-zero exit, and leaves the log as it was.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	courier := w.enroll("courier-x", "courier", "Swift Couriers")
	item := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair").ok(t).line()
	delivered := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair").ok(t).line()
	code := w.prov("handoff", "--key", acme, "--item", delivered, "--claim").ok(t).line()
	w.prov("receive", "--item", delivered, "--claim-code", code).ok(t)
	offered := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair").ok(t).line()
	w.prov("handoff", "--key", acme, "--item", offered, "--claim").ok(t)

	loose := w.path("loose.key")
	writeFile(t, loose, readFile(t, acme)) // 0644
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	otherOp, _ := w.keygen("operator")

	badCheck := strings.Replace(item, "/01/09506000134352/", "/01/09506000134353/", 1)
	unknown := defaultBase + "/01/09506000134352/21/NOSUCHSERIAL"
	d := w.data
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown verb", []string{"frobnicate"}, exitUsage, `unknown verb "frobnicate"`},
		{"no verb flags", []string{"register", "--data", d}, exitUsage, "missing --key"},
		{"missing flag", []string{"register", "--data", d, "--key", acme, "--product", "x"}, exitUsage, "missing --gtin"},
		{"unknown flag", []string{"history", "--data", d, "--itme", item}, exitUsage, "flag provided but not defined: -itme"},
		{"stray argument", []string{"history", "--data", d, item}, exitUsage, "unexpected argument"},
		{"serial and count", []string{"register", "--data", d, "--key", acme, "--gtin", testGTIN, "--product", "x", "--serial", "A", "--count", "2"}, exitUsage, "not both"},
		{"to and claim", []string{"handoff", "--data", d, "--key", acme, "--item", item, "--to", "courier-x", "--claim"}, exitUsage, "either --to ACTOR or --claim"},
		{"bad role", []string{"enroll", "--data", d, "--id", "x-co", "--role", "king", "--name", "X", "--key", "k"}, exitUsage, `--role "king"`},
		{"verify without keys", []string{"verify", "--bundle", "b.json"}, exitUsage, "missing --log-key"},
		{"bad check digit", []string{"history", "--data", d, "--item", badCheck}, exitFail, "check digit is 3, expected 2"},
		{"bad check digit in gtin", []string{"register", "--data", d, "--key", acme, "--gtin", "9506000134353", "--product", "x"}, exitFail, "check digit is 3, expected 2"},
		{"unknown item", []string{"handoff", "--data", d, "--key", acme, "--item", unknown, "--to", "courier-x"}, exitFail, "is not registered"},
		{"wrong custodian", []string{"handoff", "--data", d, "--key", courier, "--item", item, "--to", "acme"}, exitFail, "not the custodian"},
		{"receive with no handoff", []string{"receive", "--data", d, "--key", courier, "--item", item}, exitFail, "no handoff pending"},
		{"reused claim code", []string{"receive", "--data", d, "--item", delivered, "--claim-code", code}, exitFail, "already delivered to a buyer"},
		{"claim code of another item", []string{"receive", "--data", d, "--item", offered, "--claim-code", code}, exitFail, "wrong claim code"},
		{"wrong role", []string{"register", "--data", d, "--key", courier, "--gtin", testGTIN, "--product", "x"}, exitFail, "only a manufacturer registers items"},
		{"handoff to unknown actor", []string{"handoff", "--data", d, "--key", acme, "--item", item, "--to", "nobody"}, exitFail, `receiver "nobody" is not enrolled`},
		{"key file 0644", []string{"handoff", "--data", d, "--key", loose, "--item", item, "--to", "courier-x"}, exitFail, "want 0600"},
		{"no key file", []string{"handoff", "--data", d, "--key", w.path("none.key"), "--item", item, "--to", "courier-x"}, exitFail, "no such file"},
		{"not the operator key", []string{"enroll", "--data", d, "--operator-key", otherOp, "--id", "x-co", "--role", "courier", "--name", "X", "--key", "k"}, exitFail, "is not the operator key of this log"},
		{"malformed actor key", []string{"enroll", "--data", d, "--id", "x-co", "--role", "courier", "--name", "X", "--key", "k"}, exitFail, "enroll.key"},
		{"enroll twice", []string{"enroll", "--data", d, "--id", "acme", "--role", "courier", "--name", "X", "--key", newVKey(t, "acme")}, exitFail, "already enrolled"},
		{"keygen over a file", []string{"keygen", "--id", "acme", "--out", acme}, exitFail, "exists already"},
		{"keygen bad id", []string{"keygen", "--id", "Acme Ltd", "--out", w.path("x.key")}, exitFail, `--id: actor id "Acme Ltd" has 'A' at position 1`},
		{"no data directory", []string{"history", "--data", w.path("nodata"), "--item", item}, exitFail, "no data directory"},
		{"revoke unknown actor", []string{"revoke", "--data", d, "--id", "nobody", "--reason", "x"}, exitFail, `actor "nobody" is not enrolled`},
		{"ruling without dispute", []string{"ruling", "--data", d, "--item", item, "--decision", "x"}, exitFail, "no open dispute"},
		{"evidence file missing", []string{"dispute", "--data", d, "--key", acme, "--item", item, "--reason", "x", "--evidence", w.path("none.jpg")}, exitFail, "evidence"},
	}
	before := w.logSize()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prov(t, tt.args...).fails(t, tt.code, tt.want)
			if after := w.logSize(); after != before {
				t.Errorf("log grew from %d to %d", before, after)
			}
		})
	}
	if _, err := os.Stat(w.path("nodata")); !os.IsNotExist(err) {
		t.Errorf("a verb made the data directory it was told to read: %v", err)
	}
}

// TestHelp checks the verb list and that every verb explains itself.
func TestHelp(t *testing.T) {
	r := prov(t)
	if r.code != exitUsage || !strings.Contains(r.stderr, "Verbs:") {
		t.Errorf("prov alone: exit %d, stderr %q", r.code, r.stderr)
	}
	r = prov(t, "help").ok(t)
	for _, v := range newEnv(nil, nil, nil).verbs() {
		if !strings.Contains(r.stdout, "  "+v.name+" ") {
			t.Errorf("prov help does not list %s", v.name)
		}
		h := prov(t, v.name, "--help").ok(t).stdout
		if !strings.Contains(h, "Usage: prov "+v.name) || !strings.Contains(h, "Example") {
			t.Errorf("prov %s --help has no usage or example:\n%s", v.name, h)
		}
		if h2 := prov(t, "help", v.name).ok(t).stdout; h2 != h {
			t.Errorf("prov help %s differs from prov %s --help", v.name, v.name)
		}
	}
}

// TestProgressBar checks that a batch draws a bar on a terminal.
func TestProgressBar(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	e := newEnv(nil, nil, nil)
	e.isTerminal = func(io.Writer) bool { return true }
	r := runProv(t, e, "register", "--data", w.data, "--key", acme, "--gtin", testGTIN, "--product", "x", "--count", "5").ok(t)
	if !strings.Contains(r.stderr, "\rregistering [") || !strings.Contains(r.stderr, "] 5/5 100%\n") {
		t.Errorf("no progress bar on a terminal: %q", r.stderr)
	}
	if n := len(strings.Fields(r.stdout)); n != 5 {
		t.Errorf("%d links on stdout, want 5", n)
	}
}
