package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyWithoutNetwork builds prov and runs verify in a process with
// no network (a new network namespace holding only a down loopback) and
// no data directory anywhere it could find one: the bundle and the pinned
// keys are all it has.
func TestVerifyWithoutNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	unshare := noNetwork(t)
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	item := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair").ok(t).line()
	bundle := w.path("chair.json")
	w.prov("bundle", "--item", item, "--out", bundle).ok(t)
	_, logKey, opKey := w.trust()
	// No server, and no data directory: move it out of reach.
	if err := os.Rename(w.data, w.path("gone")); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "prov")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cwd := t.TempDir() // a fresh working directory: no ./data
	verify := func(logKey string) (int, string, string) {
		t.Helper()
		args := append(unshare[1:], bin, "verify", "--bundle", bundle, "--log-key", logKey, "--operator-key", opKey)
		cmd := exec.CommandContext(t.Context(), unshare[0], args...)
		cmd.Dir = cwd
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout.String(), stderr.String()
		case errors.As(err, &exit):
			return exit.ExitCode(), stdout.String(), stderr.String()
		}
		t.Fatalf("run %v: %v", cmd.Args, err)
		return 0, "", ""
	}
	code, stdout, stderr := verify(logKey)
	if code != 0 || !strings.Contains(stdout, "in custody of Acme Ltd (acme)") {
		t.Errorf("verify with no network: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, _, stderr = verify(newVKey(t, "provtrail.localhost/log"))
	if code != 1 || !strings.Contains(stderr, "does NOT verify") || !strings.Contains(stderr, "not the pinned one") {
		t.Errorf("verify with another log key: exit %d, stderr %q", code, stderr)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("verify left files in its working directory: %v", entries)
	}
}

// noNetwork returns the command prefix that runs a program without
// network, or skips the test if this machine cannot (and fails it when
// the CI environment variable is set).
func noNetwork(t *testing.T) []string {
	t.Helper()
	var tried []string
	for _, prefix := range [][]string{
		{"unshare", "--net", "--map-root-user"},
		{"unshare", "--net"},
	} {
		// The probe shows there is no interface up but loopback, which is
		// down: nothing to reach.
		probe := exec.CommandContext(t.Context(), prefix[0], append(prefix[1:], "cat", "/proc/net/dev")...)
		out, err := probe.CombinedOutput()
		if err == nil && !hasUpInterface(string(out)) {
			return prefix
		}
		tried = append(tried, strings.Join(prefix, " ")+": "+strings.TrimSpace(string(out))+" "+errString(err))
	}
	msg := "cannot run a process without network here (" + strings.Join(tried, "; ") + ")"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipping the no-network verify")
	return nil
}

// hasUpInterface reports whether /proc/net/dev lists an interface other
// than lo. (A new network namespace has only lo.)
func hasUpInterface(dev string) bool {
	for _, line := range strings.Split(dev, "\n") {
		name, _, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(name) != "lo" && !strings.Contains(name, "|") {
			return true
		}
	}
	return false
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
