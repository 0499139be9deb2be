package merkle

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// GenerateKey makes a new Ed25519 signed-note key named name and returns the
// signer key (PRIVATE+KEY+name+hash+base64: keep it secret) and the verifier
// key (name+hash+base64: publish and pin it).
func GenerateKey(name string) (skey, vkey string, err error) {
	if !validKeyName(name) {
		return "", "", fmt.Errorf("key name %q: must be non-empty, with no spaces or '+'", name)
	}
	return note.GenerateKey(rand.Reader, name)
}

// CreateKeyFile generates a key named name, writes its signer key to path
// with 0600 permissions, and returns the verifier key. It refuses to
// overwrite an existing file.
func CreateKeyFile(path, name string) (vkey string, err error) {
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("sync key file: %w", err)
	}
	return vkey, f.Close()
}

// LoadKeyFile reads a signer key written by CreateKeyFile and returns the
// signer and its verifier key. It refuses a file that others can read.
func LoadKeyFile(path string) (note.Signer, string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("load key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("load key: %s has permissions %v; want 0600 (run chmod 600 %s)", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("load key: %w", err)
	}
	skey := strings.TrimSpace(string(b))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("load key %s: %w", path, err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, "", fmt.Errorf("load key %s: %w", path, err)
	}
	return signer, vkey, nil
}

// LoadOrCreateKeyFile loads the signer key at path, creating it with the
// given name first if the file does not exist.
func LoadOrCreateKeyFile(path, name string) (note.Signer, string, error) {
	if _, err := CreateKeyFile(path, name); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, "", err
	}
	return LoadKeyFile(path)
}

// VerifierKey derives the verifier key from an Ed25519 signer key.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(alg || seed)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("malformed signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("malformed Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

func validKeyName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "+ \t\n") && strings.ToValidUTF8(name, "") == name
}
