package provenance

import (
	"errors"
	"fmt"
	"strings"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// A trust policy file is the subset of the C2SP tlog-policy format
// (https://c2sp.org/tlog-policy) that a verifier of bundles (prov) and a
// mirror (provd --mirror) enforce, plus one line of provtrail's own:
//
//	log <vkey> [<url>]     the log; the key's name is its origin (exactly one)
//	operator <vkey>        the operator's key (exactly one; provtrail's extension)
//	witness <name> <vkey> [<url>], group <name> <k|any|all> <member>...
//	quorum <name>|none     the witness quorum a checkpoint needs (exactly one)
//
// Blank lines and lines starting with '#' are ignored; items are separated
// by spaces and tabs. witness and group lines and a quorum other than none
// are C2SP tlog-policy's: a bundle's checkpoint must then carry the
// witness cosignatures the quorum requires (merkle.Policy checks them).

// MaxTrustPolicySize bounds a trust policy file.
const MaxTrustPolicySize = 64 << 10

// ParseTrustPolicy reads a trust policy file: the log it names, with its
// origin, the operator key, and the witness policy if it has one.
func ParseTrustPolicy(b []byte) (Trust, error) {
	if len(b) > MaxTrustPolicySize {
		return Trust{}, fmt.Errorf("%d bytes, at most %d", len(b), MaxTrustPolicySize)
	}
	var t Trust
	haveQuorum, witnessed := false, false
	var checkpointPolicy []string // every line but the operator's: the C2SP tlog-policy
	for n, line := range strings.Split(string(b), "\n") {
		n++
		bad := func(format string, args ...any) (Trust, error) {
			return Trust{}, fmt.Errorf("line %d: %s", n, fmt.Sprintf(format, args...))
		}
		for i := 0; i < len(line); i++ {
			if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return bad("control character 0x%02x (only tab is allowed)", c)
			}
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) > 0 && f[0] != "operator" {
			checkpointPolicy = append(checkpointPolicy, line)
		} else {
			checkpointPolicy = append(checkpointPolicy, "") // keep line numbers
		}
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 {
				return bad("want \"log <vkey> [<url>]\"")
			}
			if t.LogKey != "" {
				return bad("a second log line; a policy pins one log, so give one")
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
			haveQuorum = true
			witnessed = witnessed || f[1] != "none"
		case "witness", "group":
			witnessed = true
		default:
			return bad("unknown keyword %q; want log, operator or quorum", f[0])
		}
	}
	switch {
	case t.LogKey == "":
		return Trust{}, errors.New("no \"log <vkey>\" line")
	case t.OperatorKey == "":
		return Trust{}, errors.New("no \"operator <vkey>\" line (\"prov keys --policy\" prints one)")
	case !haveQuorum:
		return Trust{}, errors.New("no quorum line; the tlog-policy format requires one (write \"quorum none\")")
	}
	if witnessed {
		p, err := merkle.ParsePolicy([]byte(strings.Join(checkpointPolicy, "\n")))
		if err != nil {
			return Trust{}, err
		}
		t.Policy = &p
	}
	return t, nil
}

// FormatTrustPolicy writes t as a trust policy file that ParseTrustPolicy
// reads.
func FormatTrustPolicy(t Trust) string {
	head := fmt.Sprintf("# provtrail trust policy for the log %s (c2sp.org/tlog-policy, and an operator line)\n", t.Origin)
	if t.Policy == nil {
		return head + fmt.Sprintf("log %s\noperator %s\nquorum none\n", t.LogKey, t.OperatorKey)
	}
	return head + "operator " + t.OperatorKey + "\n" + string(t.Policy.Format())
}
