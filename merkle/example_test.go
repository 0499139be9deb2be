package merkle_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// fixedKey returns a signer and verifier made from a fixed seed, so that
// examples have stable output and fuzz corpora hold valid signatures. Real
// keys come from GenerateKey; this one is public and must never sign
// anything real.
func fixedKey(name string) (note.Signer, note.Verifier) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		panic(err)
	}
	hash := strings.Split(vkey, "+")[1]
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	signer, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err)
	}
	return signer, verifier
}

// exampleTree returns the root of a three-leaf tree and the inclusion proof
// of its second leaf, built from LeafHash and NodeHash.
func exampleTree() (leaves [][]byte, root merkle.Hash, proofOf1 []merkle.Hash) {
	leaves = [][]byte{[]byte("event 0"), []byte("event 1"), []byte("event 2")}
	h0, h1, h2 := merkle.LeafHash(leaves[0]), merkle.LeafHash(leaves[1]), merkle.LeafHash(leaves[2])
	root = merkle.NodeHash(merkle.NodeHash(h0, h1), h2)
	return leaves, root, []merkle.Hash{h0, h2}
}

func ExampleSignCheckpoint() {
	signer, verifier := fixedKey("log.example.com")
	_, root, _ := exampleTree()

	cp, err := merkle.SignCheckpoint(signer, "log.example.com", 3, root)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s", cp.Note)

	parsed, err := merkle.ParseCheckpoint(cp.Note, "log.example.com", verifier)
	if err != nil {
		panic(err)
	}
	fmt.Println("size", parsed.Size, "root", parsed.Root == root)
	// Output:
	// log.example.com
	// 3
	// cuDRdZjUDBQ/FOv7BeLFxN3Wvr8WXzVpRDrEaViH0wI=
	//
	// — log.example.com 1X8t7sfZ4ogTtqOlESEOZm12OIXojUoMxxCMam7mOLIzkA98pM9qRLfg0A9Yl5xsdCodYJOqaWHTeVwjeTehJqq+NgE=
	// size 3 root true
}

func ExampleVerifyProof() {
	signer, verifier := fixedKey("log.example.com")
	leaves, root, proof := exampleTree()
	cp, err := merkle.SignCheckpoint(signer, "log.example.com", 3, root)
	if err != nil {
		panic(err)
	}

	b := merkle.FormatProof(merkle.Proof{Index: 1, Hashes: proof, Checkpoint: cp.Note})
	fmt.Printf("%s", b)

	got, index, err := merkle.VerifyProof(b, leaves[1], "log.example.com", verifier)
	fmt.Println("leaf", index, "of", got.Size, "verified:", err == nil)
	_, _, err = merkle.VerifyProof(b, []byte("forged event"), "log.example.com", verifier)
	fmt.Println("forged leaf rejected:", err != nil)
	// Output:
	// c2sp.org/tlog-proof@v1
	// index 1
	// o0Te2mOZ4HlwDxjKzMF07RHvGx0WQnHjqV2CxzRGaXc=
	// mwsvHVi/CGiQtBRvCe+kLKE+UlqgM5OSFWDFgU/1MIg=
	//
	// log.example.com
	// 3
	// cuDRdZjUDBQ/FOv7BeLFxN3Wvr8WXzVpRDrEaViH0wI=
	//
	// — log.example.com 1X8t7sfZ4ogTtqOlESEOZm12OIXojUoMxxCMam7mOLIzkA98pM9qRLfg0A9Yl5xsdCodYJOqaWHTeVwjeTehJqq+NgE=
	// leaf 1 of 3 verified: true
	// forged leaf rejected: true
}

func ExampleVerifyConsistency() {
	leaves, root3, _ := exampleTree()
	h0, h1, h2 := merkle.LeafHash(leaves[0]), merkle.LeafHash(leaves[1]), merkle.LeafHash(leaves[2])
	root2 := merkle.NodeHash(h0, h1)

	// The tree of 2 leaves grew into the tree of 3 leaves: the proof is the
	// new leaf's hash, since the old tree is a complete subtree.
	err := merkle.VerifyConsistency(2, 3, root2, root3, []merkle.Hash{h2})
	fmt.Println("2 -> 3 consistent:", err == nil)

	// A log that rewrote leaf 1 cannot prove consistency.
	forked := merkle.NodeHash(merkle.NodeHash(h0, merkle.LeafHash([]byte("rewritten"))), h2)
	err = merkle.VerifyConsistency(2, 3, root2, forked, []merkle.Hash{h2})
	fmt.Println("rewrite detected:", err != nil)
	// Output:
	// 2 -> 3 consistent: true
	// rewrite detected: true
}
