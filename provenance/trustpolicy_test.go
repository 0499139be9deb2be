package provenance_test

import (
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	fnote "github.com/transparency-dev/formats/note"
)

// newVKey returns the verifier key of a new key named name.
func newVKey(t *testing.T, name string) string {
	t.Helper()
	_, vkey, err := merkle.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// newCosigVKey returns a fresh witness's cosignature/v1 verifier key.
func newCosigVKey(t *testing.T, name string) string {
	t.Helper()
	vkey, err := fnote.VKeyToCosignatureV1(newVKey(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

func TestParseTrustPolicy(t *testing.T) {
	logKey := newVKey(t, "example.com/log")
	opKey := newVKey(t, "operator")
	witness := newVKey(t, "witness.example")
	tests := []struct {
		name   string
		policy string
		want   string // "" for a policy that parses
	}{
		{"minimal", "log " + logKey + "\noperator " + opKey + "\nquorum none\n", ""},
		{"comments, blanks, tabs, url, any order", "# pinned 2026-11-22\n\n  quorum\tnone\noperator " + opKey + "\n\tlog " + logKey + " https://log.example.com/  \n# end", ""},
		{"no final newline", "log " + logKey + "\noperator " + opKey + "\nquorum none", ""},
		{"no log", "operator " + opKey + "\nquorum none\n", `no "log <vkey>" line`},
		{"no operator", "log " + logKey + "\nquorum none\n", `no "operator <vkey>" line`},
		{"no quorum", "log " + logKey + "\noperator " + opKey + "\n", "no quorum line"},
		{"two logs", "log " + logKey + "\nlog " + newVKey(t, "other/log") + "\noperator " + opKey + "\nquorum none\n", "line 2: a second log line"},
		{"two quorums", "log " + logKey + "\noperator " + opKey + "\nquorum none\nquorum none\n", "line 4: a second quorum line"},
		{"witness with a plain key", "log " + logKey + "\noperator " + opKey + "\nwitness w1 " + witness + "\nquorum w1\n", "line 3: witness key is not an Ed25519 cosignature/v1 key"},
		{"group of nobody", "log " + logKey + "\noperator " + opKey + "\ngroup g any w1\nquorum none\n", `line 3: member "w1" is not defined`},
		{"quorum of nobody", "log " + logKey + "\noperator " + opKey + "\nquorum w1\n", `line 3: quorum "w1" is not defined`},
		{"bad log key", "log example.com/log+00000000+AAAA\noperator " + opKey + "\nquorum none\n", "line 1: log key is not a signed-note verifier key"},
		{"bad operator key", "log " + logKey + "\noperator nonsense\nquorum none\n", "line 2: operator key is not a signed-note verifier key"},
		{"unknown keyword", "log " + logKey + "\noperator " + opKey + "\ntrust everything\nquorum none\n", `line 3: unknown keyword "trust"`},
		{"control character", "log " + logKey + "\r\noperator " + opKey + "\nquorum none\n", "line 1: control character 0x0d"},
		{"log with too much", "log " + logKey + " https://a https://b\n", `line 1: want "log <vkey> [<url>]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trust, err := provenance.ParseTrustPolicy([]byte(tt.policy))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("parsePolicy: %v", err)
			case tt.want == "":
				want := provenance.Trust{Origin: "example.com/log", LogKey: logKey, OperatorKey: opKey}
				if trust != want {
					t.Errorf("parsePolicy = %+v, want %+v", trust, want)
				}
			case err == nil:
				t.Fatalf("parsePolicy accepted it, want an error saying %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("parsePolicy: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFormatTrustPolicy(t *testing.T) {
	want := provenance.Trust{Origin: "example.com/log", LogKey: newVKey(t, "example.com/log"), OperatorKey: newVKey(t, "operator")}
	got, err := provenance.ParseTrustPolicy([]byte(provenance.FormatTrustPolicy(want)))
	if err != nil || got != want {
		t.Errorf("provenance.ParseTrustPolicy(provenance.FormatTrustPolicy(%+v)) = %+v, %v", want, got, err)
	}
}

// TestWitnessPolicy reads a policy that requires two witnesses of three.
func TestWitnessTrustPolicy(t *testing.T) {
	logKey, opKey := newVKey(t, "example.com/log"), newVKey(t, "operator")
	text := "log " + logKey + "\noperator " + opKey + "\n"
	for _, w := range []string{"w1", "w2", "w3"} {
		text += "witness " + w + " " + newCosigVKey(t, "witness.example/"+w) + " https://" + w + ".example\n"
	}
	text += "group two 2 w1 w2 w3\nquorum two\n"
	trust, err := provenance.ParseTrustPolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if trust.Policy == nil || trust.Policy.Quorum != "two" || len(trust.Policy.Witnesses) != 3 || trust.OperatorKey != opKey || trust.LogKey != logKey {
		t.Fatalf("parsed %+v", trust)
	}
	again, err := provenance.ParseTrustPolicy([]byte(provenance.FormatTrustPolicy(trust)))
	if err != nil || !sameTrust(again, trust) {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
}

func sameTrust(a, b provenance.Trust) bool {
	if a.Origin != b.Origin || a.LogKey != b.LogKey || a.OperatorKey != b.OperatorKey || (a.Policy == nil) != (b.Policy == nil) {
		return false
	}
	return a.Policy == nil || string(a.Policy.Format()) == string(b.Policy.Format())
}

func FuzzParseTrustPolicy(f *testing.F) {
	f.Add("log example.com/log+0e5a6f43+AWk3VUDbpjqqqGUtp4bhwsYw+qdcKcJ7XkHy0dWXMWm6\noperator operator+1f7f3f13+AQTb7Dq/ZJyOUVs7zxbg3a2QFMMwoFXG9HdF3XLwNpLv\nquorum none\n")
	f.Add("witness w1 x\n")
	f.Add("# only a comment")
	f.Fuzz(func(t *testing.T, s string) {
		trust, err := provenance.ParseTrustPolicy([]byte(s))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			return
		}
		// What parses is one log, one operator and a quorum, and prints
		// back as a policy that parses the same.
		again, err := provenance.ParseTrustPolicy([]byte(provenance.FormatTrustPolicy(trust)))
		if err != nil || !sameTrust(again, trust) {
			t.Errorf("round trip of %+v: %+v, %v", trust, again, err)
		}
	})
}
