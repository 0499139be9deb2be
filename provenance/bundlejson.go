package provenance

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"fmt"
	"strings"
)

// The bundle's JSON (docs/bundle.md): BuildBundle writes it with
// encodeBundle, and VerifyBundle accepts only the bytes encodeBundle would
// write for what it decodes (one byte form per bundle).
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

// encodeBundle writes b as encoding/json's Encoder does with two-space
// indentation and no HTML escaping (U+2028 and U+2029 still escaped), and
// a final newline. It uses encoding/json/v2, which indents as it writes
// rather than compacting first and indenting a copy; unlike v1 it refuses
// a string that is not UTF-8, which no decoded bundle holds.
func encodeBundle(b bundleJSON) ([]byte, error) {
	out, err := jsonv2.Marshal(b, jsontext.WithIndent("  "), jsontext.EscapeForHTML(false), jsontext.EscapeForJS(true))
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// decodeBundle decodes a bundle that is in its one canonical form, or
// says why not (checkCanonical). Its errors match ErrMalformedBundle.
func decodeBundle(data []byte) (bundleJSON, error) {
	var b bundleJSON
	if err := json.Unmarshal(data, &b); err != nil {
		return bundleJSON{}, fmt.Errorf("%w: not bundle JSON: %s", ErrMalformedBundle, strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := checkCanonical(data, b); err != nil {
		return bundleJSON{}, err
	}
	return b, nil
}

// checkCanonical reports whether data, which decoded to b, is in the
// bundle's one canonical form: encodeBundle must write b back byte for
// byte, which refuses unknown fields, other layouts, key orders, escapes,
// non-canonical base64 in a leaf, and anything after the object. Its
// errors match ErrMalformedBundle, and name an unknown field if there is
// one.
func checkCanonical(data []byte, b bundleJSON) error {
	if canon, err := encodeBundle(b); err == nil && bytes.Equal(canon, data) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(bundleJSON)); err != nil {
		return fmt.Errorf("%w: not bundle JSON: %s", ErrMalformedBundle, strings.TrimPrefix(err.Error(), "json: "))
	}
	return fmt.Errorf("%w: not in canonical form (as BuildBundle writes it)", ErrMalformedBundle)
}
