package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
)

// A result is what one prov command did.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

// ok fails the test unless the command succeeded.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("prov %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails checks the command failed with code and one line on stderr that
// contains want.
func (r result) fails(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("prov %s: exit %d, want %d\nstderr: %s", strings.Join(r.args, " "), r.code, code, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("prov %s: stderr %q does not say %q", strings.Join(r.args, " "), r.stderr, want)
	}
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "prov") {
		t.Errorf("prov %s: stderr is not one line starting with \"prov\": %q", strings.Join(r.args, " "), r.stderr)
	}
}

// line returns stdout without its final newline.
func (r result) line() string { return strings.TrimSuffix(r.stdout, "\n") }

// runProv runs prov in-process with e's outputs replaced by buffers.
func runProv(t *testing.T, e *env, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e.stdout, e.stderr = &stdout, &stderr
	if e.stdin == nil {
		e.stdin = strings.NewReader("")
	}
	code := e.run(t.Context(), args)
	return result{args: args, code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// prov runs prov in-process, as main would.
func prov(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	return result{args: args, code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// A world is a data directory in a temporary directory, and actors' key
// files next to it.
type world struct {
	t    *testing.T
	dir  string // the temporary directory: key files, bundles
	data string // the data directory
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, dir: dir, data: filepath.Join(dir, "data")}
	prov(t, "keys", "--data", w.data).ok(t)
	return w
}

// prov runs a verb on the world's data directory.
func (w *world) prov(verb string, args ...string) result {
	w.t.Helper()
	return prov(w.t, append([]string{verb, "--data", w.data}, args...)...)
}

// path returns the path of a file in the world's directory.
func (w *world) path(name string) string { return filepath.Join(w.dir, name) }

// keygen makes a key file for id and returns its path and verifier key.
func (w *world) keygen(id string) (path, vkey string) {
	w.t.Helper()
	path = w.path(id + ".key")
	r := prov(w.t, "keygen", "--id", id, "--out", path).ok(w.t)
	return path, r.line()
}

// enroll makes a key for a new actor, enrolls it, and returns its key file.
func (w *world) enroll(id, role, name string) string {
	w.t.Helper()
	path, vkey := w.keygen(id)
	w.prov("enroll", "--id", id, "--role", role, "--name", name, "--key", vkey).ok(w.t)
	return path
}

// logSize returns the size of the data directory's latest checkpoint.
func (w *world) logSize() uint64 {
	w.t.Helper()
	n, err := datadir.Open(w.t.Context(), datadir.Config{Dir: w.data})
	if err != nil {
		w.t.Fatal(err)
	}
	defer n.Close()
	cp, err := n.Log.Checkpoint(w.t.Context())
	if err != nil {
		w.t.Fatal(err)
	}
	return cp.Size
}

// trust returns the log origin, log key and operator key the data
// directory prints.
func (w *world) trust() (origin, logKey, opKey string) {
	w.t.Helper()
	out := w.prov("keys").ok(w.t).stdout
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, value, _ := strings.Cut(line, "  ")
		fields[name] = strings.TrimSpace(value)
	}
	return fields["origin"], fields["log key"], fields["operator key"]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newVKey returns the verifier key of a new key named name.
func newVKey(t *testing.T, name string) string {
	t.Helper()
	_, vkey, err := merkle.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}
