package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// A trust policy file is the subset of the C2SP tlog-policy format
// (https://c2sp.org/tlog-policy) that prov can enforce today, plus one
// line of provtrail's own:
//
//	log <vkey> [<url>]     the log; the key's name is its origin (exactly one)
//	operator <vkey>        the operator's key (exactly one; provtrail's extension)
//	quorum none            no witness cosignatures required (exactly one)
//
// Blank lines and lines starting with '#' are ignored; items are separated
// by spaces and tabs. witness and group lines, and a quorum other than
// none, are refused: prov does not check cosignatures yet, and a policy
// that asks for them must not pass as if it were met.

// maxPolicySize bounds a policy file.
const maxPolicySize = 64 << 10

// parsePolicy reads a trust policy file.
func parsePolicy(b []byte) (provenance.Trust, error) {
	if len(b) > maxPolicySize {
		return provenance.Trust{}, fmt.Errorf("%d bytes, at most %d", len(b), maxPolicySize)
	}
	var t provenance.Trust
	haveQuorum := false
	for n, line := range strings.Split(string(b), "\n") {
		n++
		bad := func(format string, args ...any) (provenance.Trust, error) {
			return provenance.Trust{}, fmt.Errorf("line %d: %s", n, fmt.Sprintf(format, args...))
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return bad("control character 0x%02x (only tab is allowed)", c)
			}
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 {
				return bad("want \"log <vkey> [<url>]\"")
			}
			if t.LogKey != "" {
				return bad("a second log line; prov verifies the bundles of one log, so give one")
			}
			v, err := note.NewVerifier(f[1])
			if err != nil {
				return bad("log key is not a signed-note verifier key (name+hash+base64)")
			}
			t.Origin, t.LogKey = v.Name(), f[1]
		case "operator":
			if len(f) != 2 {
				return bad("want \"operator <vkey>\"")
			}
			if t.OperatorKey != "" {
				return bad("a second operator line")
			}
			if _, err := note.NewVerifier(f[1]); err != nil {
				return bad("operator key is not a signed-note verifier key (name+hash+base64)")
			}
			t.OperatorKey = f[1]
		case "quorum":
			if len(f) != 2 {
				return bad("want \"quorum <name>\"")
			}
			if haveQuorum {
				return bad("a second quorum line; a policy has exactly one")
			}
			if f[1] != "none" {
				return bad("quorum %q needs witness cosignatures, which prov does not check yet; only \"quorum none\" is supported", f[1])
			}
			haveQuorum = true
		case "witness", "group":
			return bad("%s lines are not supported yet: prov does not check witness cosignatures; remove them and use \"quorum none\"", f[0])
		default:
			return bad("unknown keyword %q; want log, operator or quorum", f[0])
		}
	}
	switch {
	case t.LogKey == "":
		return provenance.Trust{}, errors.New("no \"log <vkey>\" line")
	case t.OperatorKey == "":
		return provenance.Trust{}, errors.New("no \"operator <vkey>\" line (\"prov keys --policy\" prints one)")
	case !haveQuorum:
		return provenance.Trust{}, errors.New("no quorum line; the tlog-policy format requires one (write \"quorum none\")")
	}
	return t, nil
}

// formatPolicy writes t as a trust policy file that parsePolicy reads.
func formatPolicy(t provenance.Trust) string {
	return fmt.Sprintf("# provtrail trust policy for the log %s (c2sp.org/tlog-policy, and an operator line)\n"+
		"log %s\noperator %s\nquorum none\n", t.Origin, t.LogKey, t.OperatorKey)
}
