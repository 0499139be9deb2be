package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/monitor"
	"github.com/provtrail/provtrail/merkle/witness"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// readLogPolicy reads a C2SP tlog-policy file for the log's checkpoints.
// A prov policy file's own "operator" line (see policy.go) is not part of
// the checkpoint policy and is skipped.
func readLogPolicy(path string) (merkle.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return merkle.Policy{}, err
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "operator" {
			continue
		}
		keep = append(keep, line)
	}
	p, err := merkle.ParsePolicy([]byte(strings.Join(keep, "\n")))
	if err != nil {
		return merkle.Policy{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(p.Logs) == 0 {
		return merkle.Policy{}, fmt.Errorf("%s: no log line: a monitor must know the log's key", path)
	}
	return p, nil
}

func monitorVerb() verb {
	return verb{
		name: "monitor", args: "--url URL --policy FILE [--state FILE] [--every DURATION]",
		summary: "follow a log and prove it only ever grew (no rewrite, no fork)",
		help: `
Monitor fetches the log's checkpoint from URL (a provd, or any C2SP
tlog-tiles log), checks it against the trust policy (the log key and, if
the policy asks for them, witness cosignatures), and proves from the log's
tiles that the tree extends the last checkpoint it verified, which it keeps
in the state file. It exits 1 with a message saying what is wrong on a
rollback (a smaller tree after a larger one), a fork (two trees of the
same size, or a larger tree that does not extend the verified one), or a
bad signature. With --every it checks again at that interval until
stopped; without, it checks once.

Example:

  $ prov keys --server https://id.example.com --out keys.policy
  $ prov monitor --url https://id.example.com --policy keys.policy
  log id.example.com/log verified at size 1204 (first check)`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			url := fs.String("url", "", "the log's `URL` (its tiles prefix; for provd, its base URL)")
			policyPath := fs.String("policy", "", "the trust policy `file` (C2SP tlog-policy)")
			state := fs.String("state", "monitor.state", "the state `file` keeping the last verified checkpoint")
			every := fs.Duration("every", 0, "check again at this `interval` until stopped (0: once)")
			return func(ctx context.Context) error {
				if err := required(fs, "url", "policy"); err != nil {
					return err
				}
				policy, err := readLogPolicy(*policyPath)
				if err != nil {
					return err
				}
				cfg := monitor.Config{URL: *url, Policy: policy, StatePath: *state, Client: &http.Client{Timeout: 30 * time.Second}}
				for {
					res, err := monitor.Check(ctx, cfg)
					if err != nil {
						return err
					}
					switch {
					case res.Old.Note == nil:
						fmt.Fprintf(c.stdout, "log %s verified at size %d (first check)\n", res.New.Origin, res.New.Size)
					case res.Old.Size == res.New.Size:
						fmt.Fprintf(c.stdout, "log %s unchanged at size %d\n", res.New.Origin, res.New.Size)
					default:
						fmt.Fprintf(c.stdout, "log %s grew from %d to %d, consistently\n", res.New.Origin, res.Old.Size, res.New.Size)
					}
					if *every <= 0 {
						return nil
					}
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(*every):
					}
				}
			}
		},
	}
}

func witnessVerb() verb {
	return verb{
		name: "witness", args: "--key FILE --policy FILE [--state FILE] [--addr ADDR]",
		summary: "run a C2SP witness that cosigns a log's checkpoints",
		help: `
Witness runs a small C2SP tlog-witness server (POST /add-checkpoint) for
the logs of the policy file. It cosigns a checkpoint (a C2SP
tlog-cosignature/v1) only if a consistency proof shows that it extends the
last one it cosigned, which it keeps in the state file, and refuses
rollbacks and forks. Run it on another machine than the log's. The key file
is made on first use (name from --name); the witness prints its
cosignature verifier key, which verifiers list in their policy as
"witness NAME VKEY".

Example:

  $ prov witness --key witness.key --name witness.example/w1 --policy keys.policy --addr :7380
  witness witness.example/w1+1f2e3d4c+BA... listening on :7380`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			keyPath := fs.String("key", "", "the witness's signer key `file` (made if missing)")
			name := fs.String("name", "", "the witness's key `name` when the key file is made")
			policyPath := fs.String("policy", "", "the policy `file` whose log lines name the logs to witness")
			state := fs.String("state", "witness.state", "the state `file` keeping the latest cosigned checkpoints")
			addr := fs.String("addr", "127.0.0.1:7380", "the `address` to listen on")
			return func(ctx context.Context) error {
				if err := required(fs, "key", "policy"); err != nil {
					return err
				}
				if _, err := os.Stat(*keyPath); errors.Is(err, os.ErrNotExist) {
					if *name == "" {
						return usagef("%s does not exist: give --name to make a new witness key", *keyPath)
					}
					if _, err := merkle.CreateKeyFile(*keyPath, *name); err != nil {
						return err
					}
				}
				signer, vkey, err := loadCosigner(*keyPath)
				if err != nil {
					return err
				}
				policy, err := readLogPolicy(*policyPath)
				if err != nil {
					return err
				}
				var logs []note.Verifier
				for _, l := range policy.Logs {
					logs = append(logs, l.Verifier)
				}
				w, err := witness.New(witness.Config{Signer: signer, Logs: logs, StatePath: *state,
					Logger: slog.New(slog.NewTextHandler(c.stderr, nil))})
				if err != nil {
					return err
				}
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "witness %s listening on %s\n", vkey, ln.Addr())
				srv := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second}
				go func() {
					<-ctx.Done()
					shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					srv.Shutdown(shut)
				}()
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			}
		},
	}
}

// loadCosigner loads an Ed25519 signer key file as a cosignature/v1 signer
// and returns its cosignature verifier key.
func loadCosigner(path string) (note.Signer, string, error) {
	if _, _, err := merkle.LoadKeyFile(path); err != nil { // checks the permissions
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	skey := strings.TrimSpace(string(b))
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	vkey, err := merkle.VerifierKey(skey)
	if err != nil {
		return nil, "", err
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		return nil, "", err
	}
	return s, cv, nil
}
