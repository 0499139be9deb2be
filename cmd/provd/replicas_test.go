package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/sqlstore"
)

// The tests in this file run provd replicas on one tree of a real Trillian
// log server (MariaDB, trillian_log_server and trillian_log_signer,
// started once per test binary by trilliantest). Without them they skip,
// saying what to install; with CI set they fail.

// trillianHarness is stopped by TestMain.
var trillianHarness trilliantest.Harness

// publicBase is every replica's --base-url: replicas behind one load
// balancer serve the same Digital Links.
const publicBase = "https://id.example.com"

// replicaArgs are the flags of a replica of tree on c.
func replicaArgs(c *trilliantest.Cluster, tree int64) []string {
	return []string{"--log", "trillian", "--trillian-addr", c.RPCAddr, "--trillian-tree", strconv.FormatInt(tree, 10),
		"--poll-interval", "50ms", "--base-url", publicBase}
}

// copyKeys makes the data directory to with copies of from's origin and
// keys, as an operator does for a new replica.
func copyKeys(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"origin", "log.key", "operator.key"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// startChild runs provd as a child process (the test binary, through
// TestMain), so that it can be killed with SIGKILL.
func startChild(t *testing.T, data string, args ...string) *server {
	t.Helper()
	return startWrapped(t, data, nil, args...)
}

// startWrapped is startChild with provd's command line appended to wrap,
// a command that execs it (sh -c '...; exec "$0" "$@"'); nil runs it
// directly.
func startWrapped(t *testing.T, data string, wrap []string, args ...string) *server {
	t.Helper()
	args = append([]string{"--addr", "127.0.0.1:0", "--data", data, "--log-format", "text"}, args...)
	argv := append(append(slices.Clone(wrap), os.Args[0]), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PROVD_TEST_MAIN=1")
	s := &server{t: t, data: data, stdout: &syncBuffer{}, done: make(chan error, 1)}
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	go func() { s.done <- cmd.Wait() }()
	s.stop = func() { cmd.Process.Kill() }
	t.Cleanup(func() {
		s.stop()
		<-s.done
		s.done <- nil
		if t.Failed() {
			t.Logf("child provd on %s logged:\n%s", data, stderr)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for s.url == "" {
		if m := listening.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			break
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("provd stopped before listening: %v\n%s\n%s", err, s.stdout, stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("provd did not start:\n%s\n%s", s.stdout, stderr)
		}
	}
	for {
		if code, _ := s.get("/healthz"); code == http.StatusOK {
			s.keys = s.trust()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz does not answer 200")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops a child provd with SIGKILL: no shutdown, no final save.
func (s *server) kill() {
	s.t.Helper()
	s.stop()
	err := <-s.done
	s.done <- err
	if err == nil || !strings.Contains(err.Error(), "killed") {
		s.t.Fatalf("provd was not killed: %v", err)
	}
}

// post POSTs a signed event and returns the status and body.
func (s *server) post(leaf []byte) (int, []byte) {
	s.t.Helper()
	resp, err := http.Post(s.url+"/api/v1/events", "text/plain", bytes.NewReader(leaf))
	if err != nil {
		s.t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// size returns the size of the replica's latest checkpoint.
func (s *server) size() uint64 {
	s.t.Helper()
	_, cp := s.get("/checkpoint")
	lines := strings.SplitN(string(cp), "\n", 3)
	if len(lines) < 3 {
		s.t.Fatalf("checkpoint: %q", cp)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		s.t.Fatalf("checkpoint: %q", cp)
	}
	return n
}

// converge waits until every replica answers path with the same 200 body,
// and returns it.
func converge(t *testing.T, path string, replicas ...*server) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var first []byte
		same := true
		var codes []int
		for i, s := range replicas {
			code, b := s.get(path)
			codes = append(codes, code)
			if i == 0 {
				first = b
			}
			same = same && code == http.StatusOK && bytes.Equal(b, first)
		}
		if same {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replicas do not agree on %s after 10s (status %v)", path, codes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// twoReplicas starts a replica in-process on a fresh tree and a second one
// (a child process if child) on a copy of its keys.
func twoReplicas(t *testing.T, child bool) (a, b *server, k *keys, c *trilliantest.Cluster, tree int64) {
	t.Helper()
	c = trillianHarness.Cluster(t)
	tree = c.NewTree(t)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a = startProvd(t, dirA, replicaArgs(c, tree)...)
	copyKeys(t, dirA, dirB)
	if child {
		b = startChild(t, dirB, replicaArgs(c, tree)...)
	} else {
		b = startProvd(t, dirB, replicaArgs(c, tree)...)
	}
	if a.keys != b.keys {
		t.Fatalf("the replicas serve different keys: %+v, %+v", a.keys, b.keys)
	}
	return a, b, newKeys(t, dirA), c, tree
}

func itemPath(id provenance.ItemID) string {
	return "/api/v1/items/" + id.GTIN + "/" + id.Serial
}

// TestReplicasShareHistory submits events alternately to two replicas:
// each event shows on both, with identical history JSON.
func TestReplicasShareHistory(t *testing.T) {
	a, b, k, _, _ := twoReplicas(t, false)
	if !strings.Contains(a.stdout.String(), "log               trillian tree ") {
		t.Errorf("start-up output does not name the Trillian tree:\n%s", a.stdout)
	}
	a.submit(k.enroll("maker", provenance.RoleManufacturer))
	b.submit(k.enroll("courier", provenance.RoleCourier))
	item := mustItem(t, "REPL1")
	r := b.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item,
		Register: &provenance.Register{Product: "Tote"}}))
	r = a.submit(k.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: item, Prev: hash(t, r.LeafHash),
		Handoff: &provenance.Handoff{To: "courier"}}))
	r = b.submit(k.sign(provenance.Event{Kind: provenance.KindReceive, Actor: "courier", Item: item, Prev: hash(t, r.LeafHash),
		Receive: &provenance.Receive{By: "courier"}}))
	h := converge(t, itemPath(item), a, b)
	var v struct {
		Custodian string            `json:"custodian"`
		Events    []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(h, &v); err != nil || v.Custodian != "courier" || len(v.Events) != 3 {
		t.Fatalf("history after register, handoff, receive: %v\n%s", err, h)
	}
	converge(t, "/api/v1/actors/courier", a, b)
	if a.size() != 5 || b.size() != 5 {
		t.Errorf("checkpoint sizes %d and %d, want 5", a.size(), b.size())
	}
}

// TestReplicasConflict sends two handoffs of one item from the same prev,
// one to each replica at the same moment, for several items. For each,
// exactly one takes effect, the same on both replicas, and the client of
// the other gets a 409 JSON error. When both reached the log (each replica
// checked its handoff before it saw the other's), the second in log order
// is refused on replay, on both replicas alike.
func TestReplicasConflict(t *testing.T) {
	a, b, k, _, _ := twoReplicas(t, false)
	a.submit(k.enroll("maker", provenance.RoleManufacturer))
	a.submit(k.enroll("courier-a", provenance.RoleCourier))
	a.submit(k.enroll("courier-b", provenance.RoleCourier))
	const items = 6
	var ids []provenance.ItemID
	var prevs []string
	for i := range items {
		id := mustItem(t, fmt.Sprintf("CONFLICT%d", i))
		ids = append(ids, id)
		prevs = append(prevs, a.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: id,
			Register: &provenance.Register{Product: "Tote"}})).LeafHash)
	}
	converge(t, itemPath(ids[items-1]), a, b)
	before := a.size()

	type answer struct {
		code int
		body []byte
	}
	answers := make([][2]answer, items)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		for r, s := range []*server{a, b} {
			leaf := k.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: id, Prev: hash(t, prevs[i]),
				Handoff: &provenance.Handoff{To: []string{"courier-a", "courier-b"}[r]}})
			wg.Go(func() {
				<-start
				code, body := s.post(leaf)
				answers[i][r] = answer{code, body}
			})
		}
	}
	close(start)
	wg.Wait()

	for i, id := range ids {
		var won []int
		for r, ans := range answers[i] {
			switch ans.code {
			case http.StatusCreated:
				won = append(won, r)
			case http.StatusConflict:
				var e apiErr
				if err := json.Unmarshal(ans.body, &e); err != nil || e.Error.Code != "stale_prev" || e.Error.Message == "" {
					t.Errorf("item %d, replica %d: the refusal is not a JSON stale_prev error: %v %s", i, r, err, ans.body)
				}
			default:
				t.Errorf("item %d, replica %d: %d %s", i, r, ans.code, ans.body)
			}
		}
		if len(won) != 1 {
			t.Fatalf("item %d: %d handoffs accepted, want 1: %+v", i, len(won), answers[i])
		}
		h := converge(t, itemPath(id), a, b)
		var v struct {
			Pending struct {
				To string `json:"to"`
			} `json:"pending"`
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(h, &v); err != nil || len(v.Events) != 2 || v.Pending.To != []string{"courier-a", "courier-b"}[won[0]] {
			t.Errorf("item %d: replica %d's handoff won, but the history says: %v\n%s", i, won[0], err, h)
		}
	}
	// Handoffs that reached the log but lost are there, refused: the log
	// grew by one per item plus one per conflict resolved on replay.
	converge(t, "/checkpoint", a, b)
	replayed := a.size() - before - items
	t.Logf("%d of %d conflicts reached the log and were refused on replay; %d were refused on submission", replayed, items, items-int(replayed))
}

// apiErr is the JSON body of an API error.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestReplicaKilled kills a replica (a child process, SIGKILL) while the
// other takes events, restarts it, and checks it catches up: the same
// history pages and byte-identical bundles, which verify offline.
func TestReplicaKilled(t *testing.T) {
	a, b, k, c, tree := twoReplicas(t, true)
	a.submit(k.enroll("maker", provenance.RoleManufacturer))
	a.submit(k.enroll("courier", provenance.RoleCourier))
	item := mustItem(t, "KILL1")
	r := b.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item,
		Register: &provenance.Register{Product: "Tote"}}))
	converge(t, itemPath(item), a, b)
	b.kill()

	r = a.submit(k.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: item, Prev: hash(t, r.LeafHash),
		Handoff: &provenance.Handoff{To: "courier"}}))
	a.submit(k.sign(provenance.Event{Kind: provenance.KindReceive, Actor: "courier", Item: item, Prev: hash(t, r.LeafHash),
		Receive: &provenance.Receive{By: "courier"}}))

	b = startChild(t, b.data, replicaArgs(c, tree)...)
	converge(t, "/checkpoint", a, b)
	converge(t, itemPath(item), a, b)
	page := converge(t, "/01/"+item.GTIN+"/21/"+item.Serial, a, b)
	if !bytes.Contains(page, []byte(`data-testid="verdict"`)) {
		t.Errorf("the history page has no verdict:\n%.500s", page)
	}
	// Both replicas are at one checkpoint, so their bundles are the same
	// bytes: the same leaves, proofs and (deterministic Ed25519) signature.
	bundle := converge(t, itemPath(item)+"/bundle", a, b)
	h, err := provenance.VerifyBundle(bundle, a.keys)
	if err != nil {
		t.Fatalf("the bundle does not verify against the pinned keys: %v", err)
	}
	if len(h.Events) != 3 || h.State.Custodian != "courier" {
		t.Errorf("verified history: %d events, custodian %q", len(h.Events), h.State.Custodian)
	}
}

// TestReplicaBundleLikeEmbedded feeds the same events, in the same order,
// to a Trillian replica and to provd on the embedded log with the same
// keys: the bundles are byte-identical, and verify offline to the same
// history.
func TestReplicaBundleLikeEmbedded(t *testing.T) {
	c := trillianHarness.Cluster(t)
	tree := c.NewTree(t)
	dirT, dirB := filepath.Join(t.TempDir(), "trillian"), filepath.Join(t.TempDir(), "bolt")
	rep := startProvd(t, dirT, replicaArgs(c, tree)...)
	copyKeys(t, dirT, dirB)
	emb := startProvd(t, dirB, "--base-url", publicBase)
	if rep.keys != emb.keys {
		t.Fatalf("keys differ: %+v, %+v", rep.keys, emb.keys)
	}
	k := newKeys(t, dirT)
	item := mustItem(t, "BUNDLE1")
	var last string
	both := func(leaf []byte) {
		r := rep.submit(leaf)
		if e := emb.submit(leaf); e.Index != r.Index {
			t.Fatalf("the same event is at %d in Trillian, %d in bbolt", r.Index, e.Index)
		}
		last = r.LeafHash
	}
	both(k.enroll("maker", provenance.RoleManufacturer))
	both(k.enroll("courier", provenance.RoleCourier))
	both(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item, Register: &provenance.Register{Product: "Tote"}}))
	both(k.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: item, Prev: hash(t, last), Handoff: &provenance.Handoff{To: "courier"}}))
	both(k.sign(provenance.Event{Kind: provenance.KindReceive, Actor: "courier", Item: item, Prev: hash(t, last), Receive: &provenance.Receive{By: "courier"}}))

	_, fromTrillian := rep.get(itemPath(item) + "/bundle")
	_, fromBolt := emb.get(itemPath(item) + "/bundle")
	ht, errT := provenance.VerifyBundle(fromTrillian, rep.keys)
	hb, errB := provenance.VerifyBundle(fromBolt, emb.keys)
	if errT != nil || errB != nil {
		t.Fatalf("VerifyBundle: Trillian %v, bbolt %v", errT, errB)
	}
	if !bytes.Equal(fromTrillian, fromBolt) {
		t.Errorf("the bundles differ:\n%s\n%s", fromTrillian, fromBolt)
	}
	if !reflect.DeepEqual(ht, hb) {
		t.Errorf("the verified histories differ:\n%+v\n%+v", ht, hb)
	}
	// The replica serves the C2SP tiles too, the same bytes.
	n := rep.size()
	for _, path := range []string{fmt.Sprintf("/tile/0/000.p/%d", n), fmt.Sprintf("/tile/entries/000.p/%d", n)} {
		codeT, tileT := rep.get(path)
		codeB, tileB := emb.get(path)
		if codeT != http.StatusOK || codeB != http.StatusOK || !bytes.Equal(tileT, tileB) {
			t.Errorf("GET %s: Trillian %d %x, bbolt %d %x", path, codeT, tileT, codeB, tileB)
		}
	}
	// Pinned keys matter alike: a bundle checked against another log key
	// fails.
	_, otherKey, err := merkle.GenerateKey(rep.keys.Origin)
	if err != nil {
		t.Fatal(err)
	}
	other := rep.keys
	other.LogKey = otherKey
	for name, b := range map[string][]byte{"Trillian": fromTrillian, "bbolt": fromBolt} {
		if _, err := provenance.VerifyBundle(b, other); !errors.Is(err, provenance.ErrBadBundle) {
			t.Errorf("the %s bundle checked against another log key: %v", name, err)
		}
	}
}

// TestReplicaRefusesOtherKeys starts a replica whose keys are not those
// the tree was first used with: provd refuses to start, saying why.
func TestReplicaRefusesOtherKeys(t *testing.T) {
	c := trillianHarness.Cluster(t)
	tree := c.NewTree(t)
	a := startProvd(t, filepath.Join(t.TempDir(), "a"), replicaArgs(c, tree)...)
	a.submit(newKeys(t, a.data).enroll("maker", provenance.RoleManufacturer))

	// A fresh directory gets fresh keys.
	err := run(t.Context(), append([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "b")}, replicaArgs(c, tree)...),
		func(string) string { return "" }, &bytes.Buffer{}, logWriter{t})
	if err == nil || !strings.Contains(err.Error(), "same origin, log.key and operator.key") {
		t.Errorf("a replica with other keys: %v", err)
	}
	// An embedded log's directory cannot become a replica.
	bolt := filepath.Join(t.TempDir(), "bolt")
	startProvd(t, bolt).shutdown()
	err = run(t.Context(), append([]string{"--addr", "127.0.0.1:0", "--data", bolt}, replicaArgs(c, tree)...),
		func(string) string { return "" }, &bytes.Buffer{}, logWriter{t})
	if err == nil || !strings.Contains(err.Error(), "holds an embedded log") {
		t.Errorf("an embedded log's directory as a replica: %v", err)
	}
	// A replica's directory is bound to its tree and backend.
	a.shutdown()
	for _, args := range [][]string{nil, replicaArgs(c, tree+1)} {
		err = run(t.Context(), append([]string{"--addr", "127.0.0.1:0", "--data", a.data}, args...),
			func(string) string { return "" }, &bytes.Buffer{}, logWriter{t})
		if err == nil || !strings.Contains(err.Error(), "tree "+strconv.FormatInt(tree, 10)) {
			t.Errorf("a replica's directory with %v: %v", args, err)
		}
	}
}

// TestLogConfig checks the log backend's flags and environment.
func TestLogConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" for valid
	}{
		{"default", nil, nil, ""},
		{"trillian", []string{"--log", "trillian", "--trillian-addr", "127.0.0.1:8090", "--trillian-tree", "42"}, nil, ""},
		{"trillian from env", nil, map[string]string{"PROVD_LOG": "trillian", "PROVD_TRILLIAN_ADDR": "127.0.0.1:8090", "PROVD_TRILLIAN_TREE": "42"}, ""},
		{"flag wins", []string{"--log", "bolt"}, map[string]string{"PROVD_LOG": "trillian"}, ""},
		{"unknown backend", []string{"--log", "etcd"}, nil, `--log "etcd": want bolt or trillian`},
		{"no address", []string{"--log", "trillian", "--trillian-tree", "42"}, nil, "needs --trillian-addr"},
		{"bad address", []string{"--log", "trillian", "--trillian-addr", "localhost", "--trillian-tree", "42"}, nil, "want host:port"},
		{"no tree", []string{"--log", "trillian", "--trillian-addr", "127.0.0.1:8090"}, nil, "needs --trillian-tree"},
		{"bad tree in env", nil, map[string]string{"PROVD_TRILLIAN_TREE": "x"}, "PROVD_TRILLIAN_TREE"},
		{"trillian flags with bolt", []string{"--trillian-tree", "42"}, nil, "need --log trillian"},
		{"poll interval", []string{"--poll-interval", "0s"}, nil, "--poll-interval 0s: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, nil)
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestReplicasShareIndex runs two replicas of one tree on one index in
// MariaDB (--index mysql://...), the second as a child process: an event
// submitted to either is served by both; the second, killed (SIGKILL)
// and restarted in-process, goes on from the shared index; and once both
// stopped,
// the index equals one rebuilt from the log. A replica of another log is
// refused the index.
func TestReplicasShareIndex(t *testing.T) {
	c := trillianHarness.Cluster(t)
	tree := c.NewTree(t)
	dsn := c.NewDatabase(t)
	args := append(replicaArgs(c, tree), "--index", "mysql://"+dsn)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := startProvd(t, dirA, args...)
	copyKeys(t, dirA, dirB)
	b := startChild(t, dirB, args...)
	where, _ := sqlstore.Describe(dsn)
	if out := a.stdout.String(); !strings.Contains(out, "index             mysql "+where+"\n") || strings.Contains(out, "-pw") {
		t.Errorf("start-up output does not name the index, or shows its password:\n%s", out)
	}
	k := newKeys(t, dirA)
	a.submit(k.enroll("maker", provenance.RoleManufacturer))
	b.submit(k.enroll("courier", provenance.RoleCourier))
	item := mustItem(t, "SHARED1")
	r := a.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item,
		Register: &provenance.Register{Product: "Tote"}}))
	converge(t, itemPath(item), a, b)
	r = b.submit(k.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: item, Prev: hash(t, r.LeafHash),
		Handoff: &provenance.Handoff{To: "courier"}}))
	converge(t, itemPath(item), a, b)
	b.kill()
	a.submit(k.sign(provenance.Event{Kind: provenance.KindReceive, Actor: "courier", Item: item, Prev: hash(t, r.LeafHash),
		Receive: &provenance.Receive{By: "courier"}}))
	b = startProvd(t, dirB, args...)
	h := converge(t, itemPath(item), a, b)
	var v struct {
		Custodian string            `json:"custodian"`
		Events    []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(h, &v); err != nil || v.Custodian != "courier" || len(v.Events) != 3 {
		t.Fatalf("history after register, handoff, receive: %v\n%s", err, h)
	}
	converge(t, "/api/v1/actors/courier", a, b)
	size := a.size()
	if err := a.shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := b.shutdown(); err != nil {
		t.Fatal(err)
	}

	shared := openIndex(t, dsn)
	if at, err := shared.Applied(t.Context()); err != nil || at != size {
		t.Fatalf("the shared index applied %d of %d positions (%v)", at, size, err)
	}
	if live, want := dumpIndex(t, shared), rebuildShared(t, c, tree, dirA, a.keys); live != want {
		t.Fatalf("the shared index differs from one rebuilt from the log:\nshared:\n%s\nrebuilt:\n%s", live, want)
	}

	// A replica of another tree, with other keys, is refused the index.
	other := append(replicaArgs(c, c.NewTree(t)), "--index", "mysql://"+dsn)
	err := run(t.Context(), append([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "c")}, other...),
		func(string) string { return "" }, &bytes.Buffer{}, logWriter{t})
	if err == nil || !strings.Contains(err.Error(), "--index") || !strings.Contains(err.Error(), "another log") {
		t.Errorf("a replica of another log on the shared index: %v", err)
	}
}

// openIndex opens the MySQL index dsn names, closed when the test ends.
func openIndex(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rebuildShared rebuilds the index of tree in a fresh database, from the
// log read with the log key of the data directory dir, and returns its
// dump.
func rebuildShared(t *testing.T, c *trilliantest.Cluster, tree int64, dir string, trust provenance.Trust) string {
	t.Helper()
	rebuilt := openIndex(t, c.NewDatabase(t))
	l := openTrillianLog(t, c, tree, dir, trust)
	if err := provenance.Rebuild(t.Context(), provenance.ServiceConfig{Log: l, Store: rebuilt, Trust: trust}); err != nil {
		t.Fatal(err)
	}
	return dumpIndex(t, rebuilt)
}

// dumpIndex returns the whole index in s, as Dump writes it.
func dumpIndex(t *testing.T, s *sqlstore.Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.Dump(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestIndexConfig checks --index and PROVD_INDEX, and that an index that
// cannot be opened stops provd with an error naming the flag and not the
// password.
func TestIndexConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" for valid
	}{
		{"default", nil, nil, ""},
		{"mysql", []string{"--index", "mysql://provd:secret@tcp(db.example:3306)/provtrail"}, nil, ""},
		{"mysql with params", []string{"--index", "mysql://provd:secret@tcp(db.example:3306)/provtrail?tls=true&timeout=5s"}, nil, ""},
		{"mysql from env", nil, map[string]string{"PROVD_INDEX": "mysql://provd:secret@tcp(db.example:3306)/provtrail"}, ""},
		{"mysql with embedded log", []string{"--log", "bolt", "--index", "mysql://provd:secret@unix(/run/mysqld/mysqld.sock)/provtrail"}, nil, ""},
		{"flag wins", []string{"--index", "bolt"}, map[string]string{"PROVD_INDEX": "postgres://x"}, ""},
		{"unknown", []string{"--index", "postgres://provd:secret@db/provtrail"}, nil, `--index "...@db/provtrail": want bolt or mysql://`},
		{"no database", []string{"--index", "mysql://provd:secret@tcp(db.example:3306)/"}, nil, "--index mysql://...: DSN names no database"},
		{"unterminated address", []string{"--index", "mysql://provd:secret@tcp(db.example:3306/provtrail"}, nil, "--index mysql://...: DSN: invalid DSN"},
		{"bad in env", nil, map[string]string{"PROVD_INDEX": "mysql://provd:secret@tcp(db.example)"}, "--index mysql://...: DSN: invalid DSN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, nil)
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one saying %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	// Nothing listens on port 1: provd stops before serving.
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--index", "mysql://provd:secret@tcp(127.0.0.1:1)/provtrail"},
		func(string) string { return "" }, &stdout, logWriter{t})
	if err == nil || !strings.Contains(err.Error(), "--index: sqlstore: open index in provd@tcp(127.0.0.1:1)/provtrail") || strings.Contains(err.Error(), "secret") {
		t.Errorf("an index that cannot be reached: %v", err)
	}
	if strings.Contains(stdout.String(), "listening") {
		t.Errorf("provd said it was listening:\n%s", stdout.String())
	}
}

// TestSubmitLatency times sequential POSTs of events (enrollments) to a
// Trillian replica and to provd on the embedded log, and logs the median
// and 90th percentile: the figures of docs/scale-out.md (go test -v -run
// SubmitLatency ./cmd/provd).
func TestSubmitLatency(t *testing.T) {
	c := trillianHarness.Cluster(t)
	const n = 40
	for _, backend := range []string{"trillian", "bolt"} {
		dir := filepath.Join(t.TempDir(), backend)
		var s *server
		if backend == "trillian" {
			s = startProvd(t, dir, replicaArgs(c, c.NewTree(t))...)
		} else {
			s = startProvd(t, dir)
		}
		k := newKeys(t, dir)
		s.submit(k.enroll("warm-up", provenance.RoleCourier))
		var took []time.Duration
		for i := range n {
			leaf := k.enroll(fmt.Sprintf("courier-%d", i), provenance.RoleCourier)
			start := time.Now()
			s.submit(leaf)
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		t.Logf("%s: %d sequential Submits over HTTP: median %v, p90 %v, max %v", backend, n,
			took[n/2].Round(100*time.Microsecond), took[n*9/10].Round(100*time.Microsecond), took[n-1].Round(100*time.Microsecond))
	}
}

// TestMirrorOfAReplica mirrors a replica on Trillian, which serves the
// C2SP tiles as the embedded log does: the mirror catches up over more
// than one entry bundle and serves byte-identical bundles and tiles.
func TestMirrorOfAReplica(t *testing.T) {
	c := trillianHarness.Cluster(t)
	tree := c.NewTree(t)
	dir := filepath.Join(t.TempDir(), "replica")
	rep := startProvd(t, dir, replicaArgs(c, tree)...)
	k := newKeys(t, dir)
	rep.submit(k.enroll("maker", provenance.RoleManufacturer))
	var leaves [][]byte
	var ids []provenance.ItemID
	for i := range 300 {
		id := mustItem(t, fmt.Sprintf("REP-%d", i))
		ids = append(ids, id)
		leaves = append(leaves, k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: id,
			Register: &provenance.Register{Product: "Tea", Lot: "L1"}}))
	}
	notes := make([]string, len(leaves))
	for i, l := range leaves {
		notes[i] = string(l)
	}
	body, err := json.Marshal(map[string][]string{"events": notes})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(rep.url+"/api/v1/events/batch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || rep.size() != uint64(1+len(leaves)) {
		t.Fatalf("batch to the replica: %d %.300s; log size %d, want %d", resp.StatusCode, answer, rep.size(), 1+len(leaves))
	}
	mirror, _ := startMirror(t, filepath.Join(t.TempDir(), "mirror"), rep.url, "--base-url", rep.url)
	if mirror.keys != rep.keys {
		t.Fatalf("the mirror pinned %+v, the replica's keys are %+v", mirror.keys, rep.keys)
	}
	catchUp(t, mirror, rep)
	for _, id := range []provenance.ItemID{ids[0], ids[len(ids)-1]} {
		b, _ := same(t, mirror, rep, "/api/v1/items/"+id.GTIN+"/"+id.Serial+"/bundle", bytes.Equal)
		if _, err := provenance.VerifyBundle(b, rep.keys); err != nil {
			t.Errorf("the mirror's bundle of %s does not verify: %v", id, err)
		}
	}
	for _, path := range []string{"/tile/0/000", "/tile/entries/000", "/tile/entries/001.p/45", "/tile/1/000.p/1"} {
		same(t, mirror, rep, path, bytes.Equal)
	}
}
