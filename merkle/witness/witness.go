// Package witness implements a C2SP transparency log witness
// (https://c2sp.org/tlog-witness): it keeps the latest checkpoint it
// cosigned for each log it knows, and cosigns a new one (with a C2SP
// tlog-cosignature/v1) only if a consistency proof shows that it extends
// that one. A log that rewrites its history, or shows two views of it,
// cannot get both past the same witness.
//
// The package holds both ends: [Witness], an http.Handler serving
// POST /add-checkpoint, and [Cosign], which a log calls to submit a
// checkpoint to a witness.
package witness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// MaxRequestSize bounds an add-checkpoint request body.
const MaxRequestSize = 16 << 10

// Config carries everything a Witness needs.
type Config struct {
	// Signer makes the witness's cosignatures: a cosignature/v1 signer
	// (github.com/transparency-dev/formats/note.NewSignerForCosignatureV1).
	Signer note.Signer
	// Logs are the logs it witnesses: each verifier's name is the log's
	// origin.
	Logs []note.Verifier
	// StatePath is the file that keeps the latest cosigned checkpoint of
	// each log; it is replaced atomically, and fsynced, on every update.
	StatePath string
	Logger    *slog.Logger
}

// A Witness cosigns checkpoints that are consistent with what it saw.
type Witness struct {
	signer note.Signer
	logs   map[string]note.Verifier
	path   string
	log    *slog.Logger

	mu    sync.Mutex // serializes check-and-update, as the spec requires
	state map[string]seen
}

// seen is the latest checkpoint cosigned for one log.
type seen struct {
	Size uint64      `json:"size"`
	Root merkle.Hash `json:"root"`
}

// New returns a witness, loading its state from cfg.StatePath if the file
// exists.
func New(cfg Config) (*Witness, error) {
	if cfg.Signer == nil || cfg.StatePath == "" || len(cfg.Logs) == 0 {
		return nil, errors.New("witness: config needs a signer, a state file and at least one log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Witness{signer: cfg.Signer, logs: map[string]note.Verifier{}, path: cfg.StatePath, log: cfg.Logger, state: map[string]seen{}}
	for _, v := range cfg.Logs {
		w.logs[v.Name()] = v
	}
	b, err := os.ReadFile(cfg.StatePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("witness: read state: %w", err)
	default:
		if err := json.Unmarshal(b, &w.state); err != nil {
			return nil, fmt.Errorf("witness: state file %s is corrupt: %w", cfg.StatePath, err)
		}
	}
	return w, nil
}

// An Error is a refusal, with the HTTP status the protocol gives it.
type Error struct {
	Status int
	// Size is the latest cosigned size, for a 409 Conflict.
	Size    uint64
	Message string
}

func (e *Error) Error() string { return e.Message }

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// AddCheckpoint handles one add-checkpoint request body and returns the
// cosignature lines, or an *Error.
func (w *Witness) AddCheckpoint(body []byte) ([]byte, error) {
	old, proof, msg, err := parseRequest(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	origin, _, _ := strings.Cut(string(msg), "\n")
	v, ok := w.logs[origin]
	if !ok {
		return nil, refuse(http.StatusNotFound, "unknown log %q", origin)
	}
	cp, err := merkle.ParseCheckpoint(msg, origin, v)
	if err != nil {
		return nil, refuse(http.StatusForbidden, "%v", err)
	}
	if old > cp.Size {
		return nil, refuse(http.StatusBadRequest, "old size %d is larger than the checkpoint's %d", old, cp.Size)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.state[origin]
	switch {
	case old != prev.Size:
		e := refuse(http.StatusConflict, "old size %d is not the latest cosigned size %d", old, prev.Size)
		e.Size = prev.Size
		return nil, e
	case old == cp.Size && old > 0 && cp.Root != prev.Root:
		e := refuse(http.StatusConflict, "a different tree of size %d was cosigned before: the log forked", old)
		e.Size = prev.Size
		w.log.Warn("fork", "origin", origin, "size", old, "cosigned", prev.Root, "offered", cp.Root)
		return nil, e
	case old == 0 && len(proof) != 0:
		return nil, refuse(http.StatusBadRequest, "a proof from size 0 must be empty")
	case old > 0 && old < cp.Size:
		if err := merkle.VerifyConsistency(old, cp.Size, prev.Root, cp.Root, proof); err != nil {
			w.log.Warn("inconsistent checkpoint", "origin", origin, "old", old, "size", cp.Size, "err", err)
			return nil, refuse(http.StatusUnprocessableEntity, "%v", err)
		}
	}
	next := make(map[string]seen, len(w.state)+1)
	for k, s := range w.state {
		next[k] = s
	}
	next[origin] = seen{Size: cp.Size, Root: cp.Root}
	if err := w.save(next); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	w.state = next
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosign: %w", err)
	}
	_, sigs, _ := bytes.Cut(signed, []byte("\n\n"))
	return sigs, nil
}

// parseRequest splits an add-checkpoint body: "old N", proof lines, an
// empty line, the checkpoint.
func parseRequest(body []byte) (old uint64, proof []merkle.Hash, checkpoint []byte, err error) {
	head, cp, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, errors.New("no empty line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	s, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return 0, nil, nil, errors.New(`the first line must be "old <size>"`)
	}
	old, err = strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(old, 10) != s {
		return 0, nil, nil, fmt.Errorf("old size %q is not a decimal number without leading zeroes", s)
	}
	if len(lines)-1 > 63 {
		return 0, nil, nil, errors.New("more than 63 proof lines")
	}
	for _, l := range lines[1:] {
		h, err := merkle.ParseHash(l)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("proof line: %v", err)
		}
		proof = append(proof, h)
	}
	return old, proof, cp, nil
}

// save replaces the state file atomically and durably.
func (w *Witness) save(state map[string]seen) error {
	b, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(w.path), ".witness-state-*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), w.path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	dir, err := os.Open(filepath.Dir(w.path))
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer dir.Close()
	return dir.Sync()
}

// ServeHTTP serves POST /add-checkpoint.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.Error(rw, "not found: this witness serves POST /add-checkpoint", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "add-checkpoint takes POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestSize))
	if err != nil {
		http.Error(rw, fmt.Sprintf("request body over %d bytes", MaxRequestSize), http.StatusRequestEntityTooLarge)
		return
	}
	sigs, err := w.AddCheckpoint(body)
	var e *Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusConflict:
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", e.Size)
	case errors.As(err, &e):
		http.Error(rw, e.Message, e.Status)
	case err != nil:
		w.log.Error("add-checkpoint", "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sigs)
	}
}

// Cosign submits a checkpoint to the witness at url (its submission
// prefix) and returns the checkpoint with the witness's cosignature added.
// prove returns the consistency proof from an older size to cp's size;
// Cosign first claims the size it last cosigned (oldSize, 0 if unknown)
// and, if the witness answers with another, retries once from that one.
func Cosign(ctx context.Context, client *http.Client, url string, cp merkle.Checkpoint, oldSize uint64, prove func(ctx context.Context, old uint64) ([]merkle.Hash, error)) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		var proof []merkle.Hash
		if oldSize > 0 && oldSize < cp.Size {
			var err error
			if proof, err = prove(ctx, oldSize); err != nil {
				return nil, err
			}
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", oldSize)
		for _, h := range proof {
			fmt.Fprintf(&body, "%s\n", h)
		}
		body.WriteString("\n")
		body.Write(cp.Note)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+"/add-checkpoint", &body)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", url, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestSize))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", url, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return append(bytes.Clone(cp.Note), b...), nil
		case resp.StatusCode == http.StatusConflict && attempt == 0:
			size, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil || size > cp.Size {
				return nil, fmt.Errorf("witness %s has cosigned size %q, beyond %d: the log rolled back or forked", url, strings.TrimSpace(string(b)), cp.Size)
			}
			oldSize = size
			continue
		}
		return nil, fmt.Errorf("witness %s refused the checkpoint of size %d: %s: %s", url, cp.Size, resp.Status, strings.TrimSpace(firstLine(b)))
	}
}

func firstLine(b []byte) string {
	s := bufio.NewScanner(bytes.NewReader(b))
	s.Scan()
	return s.Text()
}
