package provenance

import (
	"bytes"
	"strings"
)

// otherBase64 returns the signed note msg with the last base64 digit of
// its last signature line changed in the bits base64 leaves unused (the
// digit before "=" of a signature of 68 bytes carries 2 of them): the same
// signature spelled another way, which note.Open decodes and verifies.
func otherBase64(msg []byte) []byte {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	out := bytes.Clone(msg)
	i := len(bytes.TrimRight(bytes.TrimSuffix(out, []byte("\n")), "=")) - 1
	out[i] = digits[strings.IndexByte(digits, out[i])^1]
	return out
}

// sigBlock returns the signature lines of a signed note.
func sigBlock(msg []byte) []byte {
	return msg[bytes.LastIndex(msg, []byte("\n\n"))+2:]
}
