package merkle_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

func TestGenerateKeyNames(t *testing.T) {
	for _, name := range []string{"", "a b", "a+b", "tab\there", "line\nbreak", "bad\xffutf8"} {
		if _, _, err := merkle.GenerateKey(name); err == nil {
			t.Errorf("GenerateKey(%q) succeeded, want an error", name)
		}
	}
	skey, vkey, err := merkle.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+"+testOrigin+"+") || !strings.HasPrefix(vkey, testOrigin+"+") {
		t.Errorf("GenerateKey = %q, %q; want keys named %s", skey, vkey, testOrigin)
	}
}

func TestVerifierKey(t *testing.T) {
	key := newTestKey(t, testOrigin)
	got, err := merkle.VerifierKey(key.skey)
	if err != nil {
		t.Fatal(err)
	}
	if got != key.vkey {
		t.Errorf("VerifierKey(skey) = %q, GenerateKey returned %q", got, key.vkey)
	}
	parts := strings.SplitN(key.skey, "+", 5)
	for _, bad := range []string{
		"",
		key.vkey,
		"PRIVATE+KEY+" + testOrigin,
		strings.Join(append(parts[:4:4], "!!!"), "+"),
		strings.Join(append(parts[:4:4], parts[4][:20]), "+"),
	} {
		if v, err := merkle.VerifierKey(bad); err == nil {
			t.Errorf("VerifierKey(%q) = %q, want an error", bad, v)
		}
	}
}

func TestCreateAndLoadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.key")
	vkey, err := merkle.CreateKeyFile(path, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file has permissions %v, want 0600", perm)
	}
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// It never overwrites a key.
	if _, err := merkle.CreateKeyFile(path, testOrigin); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateKeyFile over an existing file = %v, want fs.ErrExist", err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(written) {
		t.Error("CreateKeyFile changed an existing key file")
	}

	signer, loadedVkey, err := merkle.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loadedVkey != vkey {
		t.Errorf("LoadKeyFile verifier key = %q, CreateKeyFile returned %q", loadedVkey, vkey)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
		t.Errorf("a note signed by the loaded key does not verify with its verifier key: %v", err)
	}

	// LoadOrCreateKeyFile loads the existing key rather than replacing it.
	_, vkey2, err := merkle.LoadOrCreateKeyFile(path, testOrigin)
	if err != nil || vkey2 != vkey {
		t.Errorf("LoadOrCreateKeyFile on an existing key = %q, %v; want %q", vkey2, err, vkey)
	}
}

func TestLoadOrCreateKeyFileCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.key")
	_, vkey, err := merkle.LoadOrCreateKeyFile(path, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	_, vkey2, err := merkle.LoadOrCreateKeyFile(path, testOrigin)
	if err != nil || vkey2 != vkey {
		t.Errorf("second LoadOrCreateKeyFile = %q, %v; want the key created first, %q", vkey2, err, vkey)
	}
}

func TestLoadKeyFileRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.key")
	if _, err := merkle.CreateKeyFile(path, testOrigin); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := merkle.LoadKeyFile(path)
	if err == nil {
		t.Fatal("LoadKeyFile of a 0644 key file succeeded, want an error")
	}
	// The message is for a person: it must name the file and the fix.
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "0600") {
		t.Errorf("LoadKeyFile error %q does not name the file and the permissions wanted", msg)
	}

	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := merkle.LoadKeyFile(garbage); err == nil {
		t.Error("LoadKeyFile of a file that is not a key succeeded")
	}
	if _, _, err := merkle.LoadKeyFile(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKeyFile of a missing file = %v, want fs.ErrNotExist", err)
	}
}
