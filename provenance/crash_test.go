package provenance_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

const crashEnv = "PROVENANCE_CRASH_CHILD"

// crashKeys makes (or, in the child, loads) the keys a crash test shares
// between processes, as signer-key files in dir.
func crashKeys(t testing.TB, dir string) map[string]keyPair {
	t.Helper()
	keys := map[string]keyPair{}
	for _, name := range []string{origin, provenance.OperatorID, "acme", "courier-a", "courier-b"} {
		path := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".skey")
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			skey, _, gerr := merkle.GenerateKey(name)
			if gerr != nil {
				t.Fatal(gerr)
			}
			b, err = []byte(skey), os.WriteFile(path, []byte(skey), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(string(b))
		if err != nil {
			t.Fatal(err)
		}
		vkey, err := merkle.VerifierKey(string(b))
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = keyPair{s, vkey}
	}
	return keys
}

// crashWorld opens the world kept in dir with the shared keys.
func crashWorld(t testing.TB, dir string) *world {
	t.Helper()
	keys := crashKeys(t, dir)
	w := &world{
		t: t, dir: dir, logKey: keys[origin], op: keys[provenance.OperatorID], keys: keys,
		clock: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC),
		rng:   rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3)),
	}
	w.trust = provenance.Trust{Origin: origin, LogKey: w.logKey.vkey, OperatorKey: w.op.vkey}
	w.open()
	return w
}

// TestServiceCrashChild is the body of the child process of
// TestServiceCrash: it submits custody chains from 16 goroutines until it
// is killed, printing every receipt it gets.
func TestServiceCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestServiceCrash")
	}
	round, _ := strconv.Atoi(os.Getenv(crashEnv + "_ROUND"))
	w := crashWorld(t, dir)
	if round == 0 {
		w.ok(w.enroll("acme", provenance.RoleManufacturer))
		w.ok(w.enroll("courier-a", provenance.RoleCourier))
		w.ok(w.enroll("courier-b", provenance.RoleCourier))
	}
	var mu sync.Mutex // the world's signing helpers are not concurrent
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	say("ready")
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for n := 0; ; n++ {
				gtin := fmt.Sprintf("095060%02d%05d", round, g*1000+n%1000)
				id, err := provenance.NewItemID(gtin+string(rune(provenance.CheckDigit(gtin))), fmt.Sprintf("R%dG%dN%d", round, g, n))
				if err != nil {
					say("error %v", err)
					return
				}
				mu.Lock()
				chain := [][]byte{w.register("acme", id)}
				mu.Unlock()
				prev := merkle.LeafHash(chain[0])
				for j, holder := range []string{"acme", "courier-a"} {
					to := []string{"courier-a", "courier-b"}[j]
					mu.Lock()
					h := w.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: holder, Item: id, Prev: prev,
						Handoff: &provenance.Handoff{To: to}}, w.key(holder))
					r := w.sign(provenance.Event{Kind: provenance.KindReceive, Actor: to, Item: id, Prev: merkle.LeafHash(h),
						Receive: &provenance.Receive{By: to}}, w.key(to))
					mu.Unlock()
					chain = append(chain, h, r)
					prev = merkle.LeafHash(r)
				}
				for _, leaf := range chain {
					rc, err := w.svc.Submit(t.Context(), leaf)
					if err != nil {
						say("error %v", err)
						return
					}
					say("ack %d %s", rc.Index, base64.StdEncoding.EncodeToString(leaf))
				}
			}
		})
	}
	wg.Wait()
}

// TestServiceCrash kills a process submitting events at random moments.
// After each kill the reopened Service has every acknowledged event at its
// index, and its index equals one rebuilt from the log alone.
func TestServiceCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills child processes")
	}
	dir := t.TempDir()
	crashKeys(t, dir)
	acked := map[uint64][]byte{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestServiceCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashEnv, round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		lines.Buffer(nil, 1<<20)
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start: %q", lines.Text())
		}
		delay := time.Duration(100+rng.IntN(600)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
		n := 0
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("child said %q", lines.Text())
			}
			idx, _ := strconv.ParseUint(f[1], 10, 64)
			leaf, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			acked[idx] = leaf
			n++
		}
		timer.Stop()
		cmd.Wait()
		t.Logf("round %d: killed after %v with %d events acknowledged", round, delay, n)

		w := crashWorld(t, dir)
		for idx, leaf := range acked {
			got, err := w.log.Leaves(t.Context(), idx, idx+1)
			if err != nil {
				t.Fatal(err)
			}
			if string(got[0]) != string(leaf) {
				t.Fatalf("acknowledged event at %d is gone", idx)
			}
			e, _ := provenance.ParseEvent(leaf)
			if v, err := w.svc.Item(t.Context(), e.Item); err != nil || !containsIndex(v, idx) {
				t.Fatalf("acknowledged event at %d is not in the history of %s (%v)", idx, e.Item, err)
			}
		}
		w.close()
		w.open()
		live := dumpIndex(t, w.store)
		w.svc.Close()
		if err := provenance.Rebuild(t.Context(), w.config()); err != nil {
			t.Fatal(err)
		}
		if rebuilt := dumpIndex(t, w.store); live != rebuilt {
			t.Fatalf("round %d: the index after the crash differs from one rebuilt from the log", round)
		}
		w.log.Close()
		w.db.Close()
	}
	if len(acked) == 0 {
		t.Fatal("no event was acknowledged: nothing was tested")
	}
}

func containsIndex(v provenance.ItemView, idx uint64) bool {
	for _, e := range v.Events {
		if e.Index == idx {
			return true
		}
	}
	return false
}
