// Package assets holds the files pages load from /assets/: the stylesheet,
// the in-browser verifier, signer and scanner scripts with what they
// vendor, and icons.
//
// The embed patterns name what ships: the scripts, the stylesheet, the
// icons and the vendor directory (the vendored scripts with their licence
// and provenance notes). Go files, tests and testdata are not embedded.
// The web package serves only browser file types from FS.
package assets

import "embed"

// FS holds the files that ship: *.js, *.css, *.svg and vendor/.
//
//go:embed *.js *.css *.svg vendor
var FS embed.FS
