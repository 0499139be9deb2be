package merkle

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// A Policy is a C2SP tlog-policy (https://c2sp.org/tlog-policy): the logs
// a verifier trusts, the witnesses it knows, and the quorum of witness
// cosignatures a checkpoint needs.
type Policy struct {
	Logs      []PolicyLog
	Witnesses []PolicyWitness
	Groups    []PolicyGroup
	// Quorum names the witness or group that must have cosigned, or is
	// "none".
	Quorum string
}

// A PolicyLog is a "log <vkey> [<url>]" line. The key's name is the log's
// origin.
type PolicyLog struct {
	Key      string
	URL      string
	Verifier note.Verifier
}

// A PolicyWitness is a "witness <name> <vkey> [<url>]" line; the key is a
// cosignature/v1 key.
type PolicyWitness struct {
	Name     string
	Key      string
	URL      string
	Verifier note.Verifier
}

// A PolicyGroup is a "group <name> <k|any|all> <member>..." line.
type PolicyGroup struct {
	Name      string
	Threshold int
	Members   []string
}

// ErrPolicy is matched by every error of ParsePolicy, and by every error
// of Policy.Verify for a checkpoint that the policy does not accept.
var ErrPolicy = errors.New("trust policy")

// ParsePolicy parses a C2SP tlog-policy. It enforces the specification's
// structure: names defined before use and listed as members at most once,
// thresholds in [1, n], no duplicate keys, exactly one quorum line, and
// witness keys of the cosignature/v1 type.
func ParsePolicy(text []byte) (Policy, error) {
	fail := func(line int, format string, args ...any) (Policy, error) {
		return Policy{}, fmt.Errorf("%w: line %d: %s", ErrPolicy, line, fmt.Sprintf(format, args...))
	}
	var p Policy
	defined, member, keys := map[string]bool{}, map[string]bool{}, map[string]bool{}
	quorum := false
	for i, b := range text {
		if b != '\t' && b != '\n' && (b < 0x20 || b == 0x7f) {
			return Policy{}, fmt.Errorf("%w: byte 0x%02x at offset %d is not allowed", ErrPolicy, b, i)
		}
	}
	for n, line := range strings.Split(string(text), "\n") {
		n++
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) < 2 || len(f) > 3 {
				return fail(n, "want: log <vkey> [<url>]")
			}
			v, err := note.NewVerifier(f[1])
			if err != nil {
				return fail(n, "log key: %v", err)
			}
			if keys[f[1]] {
				return fail(n, "duplicate key")
			}
			keys[f[1]] = true
			l := PolicyLog{Key: f[1], Verifier: v}
			if len(f) == 3 {
				l.URL = f[2]
			}
			p.Logs = append(p.Logs, l)
		case "witness":
			if len(f) < 3 || len(f) > 4 {
				return fail(n, "want: witness <name> <vkey> [<url>]")
			}
			if f[1] == "none" || defined[f[1]] {
				return fail(n, "name %q is reserved or defined already", f[1])
			}
			v, err := fnote.NewVerifierForCosignatureV1(f[2])
			if err != nil || !isCosignatureKey(f[2]) {
				return fail(n, "witness key is not an Ed25519 cosignature/v1 key (type 0x04)")
			}
			if keys[f[2]] {
				return fail(n, "duplicate key")
			}
			keys[f[2]] = true
			w := PolicyWitness{Name: f[1], Key: f[2], Verifier: v}
			if len(f) == 4 {
				w.URL = f[3]
			}
			defined[f[1]] = true
			p.Witnesses = append(p.Witnesses, w)
		case "group":
			if len(f) < 4 {
				return fail(n, "want: group <name> <k|any|all> <member>...")
			}
			name, members := f[1], f[3:]
			if name == "none" || defined[name] {
				return fail(n, "name %q is reserved or defined already", name)
			}
			k := 0
			switch f[2] {
			case "any":
				k = 1
			case "all":
				k = len(members)
			default:
				v, err := strconv.Atoi(f[2])
				if err != nil || strconv.Itoa(v) != f[2] {
					return fail(n, "threshold %q is not a decimal number, any or all", f[2])
				}
				k = v
			}
			if k < 1 || k > len(members) {
				return fail(n, "threshold %d is not between 1 and %d", k, len(members))
			}
			for _, m := range members {
				if !defined[m] {
					return fail(n, "member %q is not defined on an earlier line", m)
				}
				if member[m] {
					return fail(n, "%q is a member of a group already", m)
				}
				member[m] = true
			}
			defined[name] = true
			p.Groups = append(p.Groups, PolicyGroup{Name: name, Threshold: k, Members: members})
		case "quorum":
			if len(f) != 2 {
				return fail(n, "want: quorum <name>")
			}
			if quorum {
				return fail(n, "a second quorum line")
			}
			if f[1] != "none" && !defined[f[1]] {
				return fail(n, "quorum %q is not defined on an earlier line", f[1])
			}
			quorum, p.Quorum = true, f[1]
		default:
			return fail(n, "unknown keyword %q", f[0])
		}
	}
	if !quorum {
		return Policy{}, fmt.Errorf("%w: no quorum line", ErrPolicy)
	}
	return p, nil
}

// Verify checks that msg is a checkpoint signed by one of the policy's
// logs, for the origin that log's key names, and cosigned by witnesses
// meeting the quorum. Signatures by keys the policy does not know are
// ignored; a signature by a known key that does not verify fails.
func (p Policy) Verify(msg []byte) (Checkpoint, error) {
	vs := make([]note.Verifier, 0, len(p.Logs)+len(p.Witnesses))
	for _, l := range p.Logs {
		vs = append(vs, l.Verifier)
	}
	for _, w := range p.Witnesses {
		vs = append(vs, w.Verifier)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint: %v", ErrPolicy, err)
	}
	origin, _, _ := strings.Cut(n.Text, "\n")
	var logV note.Verifier
	for _, l := range p.Logs {
		if l.Verifier.Name() == origin && signedBy(n.Sigs, l.Verifier) {
			logV = l.Verifier
		}
	}
	if logV == nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint for %q is not signed by a log the policy trusts", ErrPolicy, origin)
	}
	cp, err := ParseCheckpoint(msg, origin, logV)
	if err != nil {
		return Checkpoint{}, err
	}
	if !p.met(p.Quorum, n.Sigs) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint lacks the cosignatures quorum %q needs", ErrPolicy, p.Quorum)
	}
	return cp, nil
}

func (p Policy) met(name string, sigs []note.Signature) bool {
	if name == "none" {
		return true
	}
	if i := slices.IndexFunc(p.Witnesses, func(w PolicyWitness) bool { return w.Name == name }); i >= 0 {
		return signedBy(sigs, p.Witnesses[i].Verifier)
	}
	i := slices.IndexFunc(p.Groups, func(g PolicyGroup) bool { return g.Name == name })
	if i < 0 {
		return false
	}
	g, k := p.Groups[i], 0
	for _, m := range g.Members {
		if p.met(m, sigs) {
			k++
		}
	}
	return k >= g.Threshold
}

// isCosignatureKey reports whether vkey wraps a key of type 0x04, Ed25519
// cosignature/v1 (the verifier constructor accepts plain Ed25519 keys too).
func isCosignatureKey(vkey string) bool {
	// name+hash+base64(type || key); the base64 may itself hold '+'.
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	return err == nil && len(raw) > 0 && raw[0] == 0x04
}

func signedBy(sigs []note.Signature, v note.Verifier) bool {
	return slices.ContainsFunc(sigs, func(s note.Signature) bool { return s.Name == v.Name() && s.Hash == v.KeyHash() })
}

// Format writes the policy in canonical form: logs, witnesses, groups,
// then the quorum.
func (p Policy) Format() []byte {
	var b bytes.Buffer
	for _, l := range p.Logs {
		b.WriteString(strings.TrimSpace("log " + l.Key + " " + l.URL))
		b.WriteByte('\n')
	}
	for _, w := range p.Witnesses {
		b.WriteString(strings.TrimSpace("witness " + w.Name + " " + w.Key + " " + w.URL))
		b.WriteByte('\n')
	}
	for _, g := range p.Groups {
		fmt.Fprintf(&b, "group %s %d %s\n", g.Name, g.Threshold, strings.Join(g.Members, " "))
	}
	b.WriteString("quorum " + p.Quorum + "\n")
	return b.Bytes()
}
