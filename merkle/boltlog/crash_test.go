package boltlog

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
	"golang.org/x/mod/sumdb/note"
)

// crashChildEnv, when set to a directory, makes this test binary a crash
// child: it appends under concurrent load until killed, printing what it
// acknowledges.
const crashChildEnv = "BOLTLOG_CRASH_CHILD"

// crashLeaf is the leaf a crash child appends as number id of round r.
func crashLeaf(round, id int) []byte {
	return fmt.Appendf(nil, "round %d leaf %d %s", round, id, strings.Repeat("x", id%300))
}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	round, _ := strconv.Atoi(os.Getenv(crashChildEnv + "_ROUND"))
	skey, err := os.ReadFile(filepath.Join(dir, "skey"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := openLog(t, dir, s)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	say("ready")
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := i*32 + g
				idx, err := l.Append(t.Context(), [][]byte{crashLeaf(round, id)})
				if err != nil {
					say("error %v", err)
					return
				}
				say("ack %d %d", idx[0], id)
				if id%50 == 0 {
					cp, err := l.Checkpoint(t.Context())
					if err != nil {
						say("error %v", err)
						return
					}
					say("cp %s", base64.StdEncoding.EncodeToString(cp.Note))
				}
			}
		})
	}
	wg.Wait()
}

// TestCrashRecovery kills a child process appending under load with
// SIGKILL at random moments, several times. After each kill, every index
// the child acknowledged still holds its leaf, and the reopened tree is
// consistent with every checkpoint the child published.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills child processes")
	}
	dir := t.TempDir()
	skey, vkey, err := merkle.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "skey"), []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := map[uint64][]byte{}
	var checkpoints []merkle.Checkpoint
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("%s_ROUND=%d", crashChildEnv, round))
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
			t.Fatalf("round %d: child did not start: %q", round, lines.Text())
		}
		delay := time.Duration(20+rng.IntN(400)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
		n, cps := 0, 0
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			switch {
			case len(f) == 3 && f[0] == "ack":
				idx, _ := strconv.ParseUint(f[1], 10, 64)
				id, _ := strconv.Atoi(f[2])
				acked[idx] = crashLeaf(round, id)
				n++
			case len(f) == 2 && f[0] == "cp":
				msg, err := base64.StdEncoding.DecodeString(f[1])
				if err != nil {
					t.Fatal(err)
				}
				cp, err := merkle.ParseCheckpoint(msg, testOrigin, v)
				if err != nil {
					t.Fatalf("child published a bad checkpoint: %v", err)
				}
				checkpoints = append(checkpoints, cp)
				cps++
			default:
				t.Fatalf("child said %q", lines.Text())
			}
		}
		timer.Stop()
		cmd.Wait()
		t.Logf("round %d: killed after %v, %d appends and %d checkpoints acknowledged", round, delay, n, cps)

		// Reopen in this process and check everything acknowledged so far.
		l, db := openLog(t, dir, s)
		cp, err := l.Checkpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for idx, want := range acked {
			if idx >= cp.Size {
				t.Fatalf("acknowledged index %d is beyond the recovered size %d", idx, cp.Size)
			}
			got, err := l.Leaves(t.Context(), idx, idx+1)
			if err != nil {
				t.Fatal(err)
			}
			if string(got[0]) != string(want) {
				t.Fatalf("index %d holds %q, acknowledged %q", idx, got[0], want)
			}
		}
		for _, old := range checkpoints {
			p, err := l.ConsistencyProof(t.Context(), old.Size, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyConsistency(old.Size, cp.Size, old.Root, cp.Root, p); err != nil {
				t.Fatalf("recovered tree (size %d) is not consistent with published checkpoint of size %d: %v", cp.Size, old.Size, err)
			}
		}
		// A retry of an acknowledged leaf finds its index.
		for idx, leaf := range acked {
			got, err := l.Append(t.Context(), [][]byte{leaf})
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != idx {
				t.Fatalf("retry of leaf at %d got index %d", idx, got[0])
			}
			break
		}
		l.Close()
		db.Close()
	}
	if len(acked) == 0 || len(checkpoints) == 0 {
		t.Fatalf("the children acknowledged %d appends and %d checkpoints: nothing was tested", len(acked), len(checkpoints))
	}
}
