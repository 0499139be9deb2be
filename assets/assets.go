// Package assets holds the files pages load from /assets/: the stylesheet,
// the in-browser verifier, signer and scanner scripts with what they
// vendor, and icons.
//
// The embed pattern is the whole directory, so it always matches (this
// file is in it) and the package builds whether or not the scripts are
// present yet. It also picks up files that are not for browsers (Go files,
// tests, testdata); the web package serves only browser file types outside
// testdata, never tests.
package assets

import "embed"

// FS holds this directory's files: *.css, *.js, *.svg, icons and vendored
// scripts, and whatever else lives here (see the package doc).
//
//go:embed *
var FS embed.FS
