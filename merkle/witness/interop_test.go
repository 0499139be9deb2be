package witness

import (
	"bytes"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// The interop tests run our log and client against a witness we did not
// write: the omniwitness of github.com/transparency-dev/witness, at the
// version .ci/install-witness pins and installs.
const interopInstall = "bash .ci/install-witness"

// lockedBuffer collects the witness's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// omniwitnessBinary finds the installed omniwitness, or skips the test (fails
// it under CI).
func omniwitnessBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("omniwitness"); err == nil {
		return p
	}
	bin := os.Getenv("GOBIN")
	if bin == "" {
		bin = filepath.Join(build.Default.GOPATH, "bin")
	}
	p := filepath.Join(bin, "omniwitness")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "the transparency-dev omniwitness is not installed; install it from the repository root with: " + interopInstall
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startOmniwitness runs the transparency-dev witness on a loopback port,
// witnessing the log with key logVkey (origin: the key's name), and returns
// its URL and its cosignature/v1 verifier key.
func startOmniwitness(t *testing.T, logVkey string) (string, string) {
	t.Helper()
	binary := omniwitnessBinary(t)
	dir := t.TempDir()
	skey, vkey, err := merkle.GenerateKey("witness.test/omniwitness")
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "witness.key")
	if err := os.WriteFile(keyPath, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	logsPath := filepath.Join(dir, "logs.yaml")
	logs := fmt.Sprintf("Logs:\n  - Origin: %q\n    PublicKey: %q\n", origin, logVkey)
	if err := os.WriteFile(logsPath, []byte(logs), 0o600); err != nil {
		t.Fatal(err)
	}
	// Pick a free loopback port; the witness binds it right after.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	out := &lockedBuffer{}
	cmd := exec.Command(binary,
		"--listen", addr,
		"--metrics_listen", "",
		"--private_key_path", keyPath,
		"--additional_logs", logsPath,
		"--db_file", filepath.Join(dir, "witness.db"),
		"--logtostderr",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("omniwitness output:\n%s", out)
		}
	})

	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("omniwitness exited: %v\n%s", err, out)
		default:
		}
		resp, err := http.Post(url+"/add-checkpoint", "text/plain", strings.NewReader("not a request"))
		if err == nil {
			resp.Body.Close()
			return url, cvkey
		}
		if time.Now().After(deadline) {
			t.Fatalf("omniwitness does not answer at %s: %v\n%s", url, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInteropOmniwitness(t *testing.T) {
	ctx := t.Context()
	lg := newLog(t, "")
	url, wkey := startOmniwitness(t, lg.vkey)
	policy, err := merkle.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness omni %s %s\nquorum omni\n", lg.vkey, wkey, url))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}

	// (1) A first cosignature, trusted on first use.
	cp1 := lg.grow(t, "a", 10)
	cosigned, err := Cosign(ctx, client, url, cp1, 0, lg.prove)
	if err != nil {
		t.Fatalf("first cosignature: %v", err)
	}
	if got, err := policy.Verify(cosigned); err != nil || got.Size != cp1.Size {
		t.Fatalf("their cosignature of size %d does not meet our policy: %v\n%s", cp1.Size, err, cosigned)
	}

	// (2) Growth, with a consistency proof from the size they cosigned.
	cp2 := lg.grow(t, "b", 7)
	cosigned, err = Cosign(ctx, client, url, cp2, cp1.Size, lg.prove)
	if err != nil {
		t.Fatalf("growth with a consistency proof: %v", err)
	}
	if got, err := policy.Verify(cosigned); err != nil || got.Size != cp2.Size {
		t.Fatalf("second cosignature does not meet our policy: %v\n%s", err, cosigned)
	}
	// Growth again, claiming no previous size: their 409 names the size
	// they hold, and Cosign proves from there.
	cp3 := lg.grow(t, "c", 5)
	cosigned, err = Cosign(ctx, client, url, cp3, 0, lg.prove)
	if err != nil {
		t.Fatalf("growth after their 409: %v", err)
	}
	if got, err := policy.Verify(cosigned); err != nil || got.Size != cp3.Size {
		t.Fatalf("third cosignature does not meet our policy: %v\n%s", err, cosigned)
	}

	// (3) A fork: the log's key signs another tree of the same size.
	forked := signLike(t, lg, cp3.Size, merkle.LeafHash([]byte("not the real root")))
	if code, body := post(t, url, fmt.Sprintf("old %d\n\n%s", cp3.Size, forked)); code == http.StatusOK {
		t.Fatalf("their witness cosigned a fork of size %d: %q", cp3.Size, body)
	} else {
		t.Logf("fork of the same size: %d %q", code, strings.TrimSpace(body))
	}
	lv, err := note.NewVerifier(lg.vkey)
	if err != nil {
		t.Fatal(err)
	}
	fcp, err := merkle.ParseCheckpoint(forked, origin, lv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Cosign(ctx, client, url, fcp, cp3.Size, lg.prove); err == nil {
		t.Fatal("Cosign got a cosignature for a fork")
	}
	// A larger tree that does not extend what they cosigned, with a proof
	// from the real log (which cannot prove it).
	bad := signLike(t, lg, cp3.Size+5, merkle.LeafHash([]byte("elsewhere")))
	p, err := lg.log.ConsistencyProof(ctx, cp2.Size, cp3.Size)
	if err != nil {
		t.Fatal(err)
	}
	var proof strings.Builder
	for _, h := range p {
		fmt.Fprintf(&proof, "%s\n", h)
	}
	if code, body := post(t, url, fmt.Sprintf("old %d\n%s\n%s", cp3.Size, proof.String(), bad)); code == http.StatusOK {
		t.Fatalf("their witness cosigned an inconsistent larger tree: %q", body)
	} else {
		t.Logf("inconsistent larger tree: %d %q", code, strings.TrimSpace(body))
	}
	// Refusals left their state alone: the real log still grows.
	cp4 := lg.grow(t, "d", 3)
	if _, err := Cosign(ctx, client, url, cp4, cp3.Size, lg.prove); err != nil {
		t.Fatalf("growth after the refused fork: %v", err)
	}

	// (4) A Witnessed log publishes only what their witness cosigned. It
	// starts knowing nothing of what they hold (cp4), so its first
	// submission also goes through their 409.
	wl, err := NewWitnessed(ctx, WitnessedConfig{Log: lg.log, Policy: policy, Client: client, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	for round := range 3 {
		idx, err := wl.Append(ctx, [][]byte{fmt.Appendf(nil, "witnessed %d", round), fmt.Appendf(nil, "witnessed %d'", round)})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		cp, err := wl.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size <= idx[1] {
			t.Fatalf("published size %d does not cover index %d", cp.Size, idx[1])
		}
		if got, err := policy.Verify(cp.Note); err != nil || got.Size != cp.Size {
			t.Fatalf("published checkpoint does not meet the policy: %v\n%s", err, cp.Note)
		}
	}
}
