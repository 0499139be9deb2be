package provenance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The bundle's JSON: BuildBundle writes it with encodeBundle, and
// VerifyBundle accepts only the bytes encodeBundle would write for what it
// decodes (one byte form per bundle).
type bundleJSON struct {
	Format      string      `json:"format"`
	Origin      string      `json:"origin"`
	LogKey      string      `json:"log_key"`
	OperatorKey string      `json:"operator_key"`
	Item        string      `json:"item"`
	Checkpoint  string      `json:"checkpoint"`
	Entries     []entryJSON `json:"entries"`
}

type entryJSON struct {
	Index uint64 `json:"index"`
	Leaf  []byte `json:"leaf"`  // base64
	Proof string `json:"proof"` // C2SP tlog-proof@v1
}

func encodeBundle(b bundleJSON) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeBundle decodes a bundle that is in canonical form, or says why
// not.
//
// Most bundles take the fast path, decodeCanonical, which reads the exact
// layout encodeBundle writes in one pass. Whatever it does not accept (any
// other layout, and strings it cannot be sure encodeBundle would write the
// same way) takes the slow path: encoding/json decodes it, and re-encoding
// it must give the same bytes. The two agree on what they accept and what
// it decodes to (FuzzDecodeBundle); the slow path says what is wrong.
func decodeBundle(data []byte) (bundleJSON, error) {
	if b, ok := decodeCanonical(data); ok {
		return b, nil
	}
	var b bundleJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return bundleJSON{}, fmt.Errorf("not bundle JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if canon, err := encodeBundle(b); err != nil || !bytes.Equal(canon, data) {
		return bundleJSON{}, fmt.Errorf("not in canonical form (as BuildBundle writes it)")
	}
	return b, nil
}

// decodeCanonical decodes data if it is exactly what encodeBundle writes for
// a bundle with at least one entry, every string of which holds only
// printable ASCII, newlines, and UTF-8 multibyte characters other than
// U+2028 and U+2029 (what encoding/json writes unescaped, or as \n, \" or
// \\). It reports false for anything else, never a wrong decoding.
func decodeCanonical(data []byte) (bundleJSON, bool) {
	r := canonReader{data: data, ok: true}
	var b bundleJSON
	r.lit("{\n  \"format\": ")
	b.Format = r.str()
	r.lit(",\n  \"origin\": ")
	b.Origin = r.str()
	r.lit(",\n  \"log_key\": ")
	b.LogKey = r.str()
	r.lit(",\n  \"operator_key\": ")
	b.OperatorKey = r.str()
	r.lit(",\n  \"item\": ")
	b.Item = r.str()
	r.lit(",\n  \"checkpoint\": ")
	b.Checkpoint = r.str()
	r.lit(",\n  \"entries\": [\n")
	for r.ok {
		var e entryJSON
		r.lit("    {\n      \"index\": ")
		e.Index = r.uint()
		r.lit(",\n      \"leaf\": ")
		e.Leaf = r.base64()
		r.lit(",\n      \"proof\": ")
		e.Proof = r.str()
		r.lit("\n    }")
		b.Entries = append(b.Entries, e)
		if !r.ok || !r.has(",\n") {
			break
		}
		r.lit(",\n")
	}
	r.lit("\n  ]\n}\n")
	if !r.ok || r.off != len(data) {
		return bundleJSON{}, false
	}
	return b, true
}

// A canonReader reads data from off; the first mismatch clears ok, and
// every later read then returns zero values.
type canonReader struct {
	data []byte
	off  int
	ok   bool
}

func (r *canonReader) has(lit string) bool {
	return bytes.HasPrefix(r.data[r.off:], []byte(lit))
}

func (r *canonReader) lit(lit string) {
	if !r.ok || !r.has(lit) {
		r.ok = false
		return
	}
	r.off += len(lit)
}

// str reads a JSON string in the subset decodeCanonical accepts.
func (r *canonReader) str() string {
	if !r.ok || r.off >= len(r.data) || r.data[r.off] != '"' {
		r.ok = false
		return ""
	}
	i := r.off + 1
	start := i
	escaped := false
	for i < len(r.data) {
		c := r.data[i]
		switch {
		case c == '"':
			raw := r.data[start:i]
			r.off = i + 1
			if !escaped {
				return string(raw)
			}
			return unescapeCanon(raw)
		case c == '\\':
			if i+1 >= len(r.data) {
				r.ok = false
				return ""
			}
			switch r.data[i+1] {
			case 'n', '"', '\\':
			default:
				r.ok = false // \t, \u...: the slow path decides
				return ""
			}
			escaped = true
			i += 2
		case c >= 0x20 && c < 0x7f:
			i++
		case c >= utf8.RuneSelf:
			ru, size := utf8.DecodeRune(r.data[i:])
			if ru == utf8.RuneError || ru == '\u2028' || ru == '\u2029' {
				r.ok = false
				return ""
			}
			i += size
		default: // a control character or DEL
			r.ok = false
			return ""
		}
	}
	r.ok = false
	return ""
}

// unescapeCanon undoes the escapes \n, \" and \\ that str let through.
func unescapeCanon(raw []byte) string {
	var sb strings.Builder
	sb.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			sb.WriteByte(c)
			continue
		}
		i++
		if raw[i] == 'n' {
			sb.WriteByte('\n')
		} else {
			sb.WriteByte(raw[i]) // '"' or '\\'
		}
	}
	return sb.String()
}

// uint reads a JSON number as encoding/json writes a uint64: decimal
// digits, no leading zero.
func (r *canonReader) uint() uint64 {
	if !r.ok {
		return 0
	}
	i := r.off
	for i < len(r.data) && r.data[i] >= '0' && r.data[i] <= '9' {
		i++
	}
	digits := r.data[r.off:i]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		r.ok = false
		return 0
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		r.ok = false
		return 0
	}
	r.off = i
	return n
}

// base64 reads a []byte as encoding/json writes it: a string of padded
// standard base64, with zero padding bits.
func (r *canonReader) base64() []byte {
	if !r.ok || r.off >= len(r.data) || r.data[r.off] != '"' {
		r.ok = false
		return nil
	}
	end := bytes.IndexByte(r.data[r.off+1:], '"')
	if end < 0 {
		r.ok = false
		return nil
	}
	s := r.data[r.off+1 : r.off+1+end]
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			r.ok = false
			return nil
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Strict().Decode(out, s)
	if err != nil {
		r.ok = false
		return nil
	}
	r.off += end + 2
	return out[:n]
}
