package merkle_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func cosigKey(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, cv
}

func TestPolicyQuorum(t *testing.T) {
	skey, vkey, _ := merkle.GenerateKey("policy.test/log")
	logSigner, _ := note.NewSigner(skey)
	s1, k1 := cosigKey(t, "w1")
	s2, k2 := cosigKey(t, "w2")
	s3, k3 := cosigKey(t, "w3")
	policy, err := merkle.ParsePolicy(fmt.Appendf(nil, "# a comment\nlog %s https://log.example\n\nwitness w1 %s\nwitness w2 %s\nwitness w3 %s\ngroup two 2 w1 w2 w3\nquorum two\n", vkey, k1, k2, k3))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := merkle.SignCheckpoint(logSigner, "policy.test/log", 3, merkle.LeafHash([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := note.Open(cp.Note, note.VerifierList(mustVerifier(t, vkey)))
	cosign := func(signers ...note.Signer) []byte {
		msg, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	for name, tc := range map[string]struct {
		msg []byte
		ok  bool
	}{
		"no cosignature":  {cp.Note, false},
		"one of two":      {cosign(s1), false},
		"two of three":    {cosign(s1, s3), true},
		"all three":       {cosign(s1, s2, s3), true},
		"unknown witness": {cosign(s1, mustCosigner(t, "w9")), false},
	} {
		got, err := policy.Verify(tc.msg)
		if tc.ok && (err != nil || got.Size != 3) {
			t.Errorf("%s: %v", name, err)
		}
		if !tc.ok && !errors.Is(err, merkle.ErrPolicy) {
			t.Errorf("%s: got %v, want ErrPolicy", name, err)
		}
	}
	if again, err := merkle.ParsePolicy(policy.Format()); err != nil || string(again.Format()) != string(policy.Format()) {
		t.Fatalf("Format does not round-trip: %v", err)
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustCosigner(t *testing.T, name string) note.Signer {
	s, _ := cosigKey(t, name)
	return s
}

func TestParsePolicyRefuses(t *testing.T) {
	_, vkey, _ := merkle.GenerateKey("policy.test/log")
	_, wkey := cosigKey(t, "w1")
	for name, text := range map[string]string{
		"no quorum":           "log " + vkey + "\n",
		"two quorums":         "quorum none\nquorum none\n",
		"undefined quorum":    "quorum w1\n",
		"plain key witness":   "witness w1 " + vkey + "\nquorum w1\n",
		"member before def":   "group g any w1\nwitness w1 " + wkey + "\nquorum g\n",
		"threshold too high":  "witness w1 " + wkey + "\ngroup g 2 w1\nquorum g\n",
		"member twice":        "witness w1 " + wkey + "\ngroup g any w1\ngroup h any w1\nquorum g\n",
		"duplicate log":       "log " + vkey + "\nlog " + vkey + "\nquorum none\n",
		"unknown keyword":     "operator " + vkey + "\nquorum none\n",
		"control character":   "quorum none\r\n",
		"reserved name":       "witness none " + wkey + "\nquorum none\n",
		"threshold not digit": "witness w1 " + wkey + "\ngroup g +1 w1\nquorum g\n",
	} {
		if _, err := merkle.ParsePolicy([]byte(text)); !errors.Is(err, merkle.ErrPolicy) {
			t.Errorf("%s: got %v, want ErrPolicy", name, err)
		} else if !strings.Contains(err.Error(), "policy") {
			t.Errorf("%s: message %q does not say it is about the policy", name, err)
		}
	}
}
