// Package api is the contract of provd's JSON API (docs/api.md) that the
// server, package web, and its clients share: the write routes, the most
// events a batch carries, and the bodies of writes, of /keys and of an
// actor. Codes of refusals
// come from provenance (provenance.ErrorCode, provenance.CodeError).
//
// It imports neither gin nor the server, so a client links none of it.
package api

import (
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
)

// The write routes.
const (
	// EventsPath takes one signed event note, sent verbatim as the body.
	EventsPath = "/api/v1/events"
	// BatchPath takes a BatchRequest.
	BatchPath = "/api/v1/events/batch"
)

// MaxBatch is the most events one POST to BatchPath carries.
const MaxBatch = 1000

// A Receipt is the answer to an accepted event: 201, or 200 for an event
// the log holds already.
type Receipt struct {
	Index      uint64      `json:"index"`
	LeafHash   merkle.Hash `json:"leaf_hash"`
	Checkpoint string      `json:"checkpoint"` // the signed checkpoint note
	Proof      string      `json:"proof"`      // C2SP tlog-proof@v1 against it
	Duplicate  bool        `json:"duplicate"`
}

// An Error says why a request, or one event of a batch, was not done.
// Code is one of provenance's error codes, or one of the server's own
// (docs/api.md lists them).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// BatchRequest is the body of a POST to BatchPath: signed event notes,
// each the exact text EventsPath takes.
type BatchRequest struct {
	Events []string `json:"events"`
}

// A BatchResult is what became of one event of a batch: the status, and
// the receipt or the error, that a POST of it alone to EventsPath would
// have answered.
type BatchResult struct {
	Status  int      `json:"status"`
	Receipt *Receipt `json:"receipt,omitempty"`
	Error   *Error   `json:"error,omitempty"`
}

// BatchResponse is the answer (200) to a batch that was taken.
type BatchResponse struct {
	Accepted   int           `json:"accepted"`   // appended now (201)
	Duplicates int           `json:"duplicates"` // in the log already (200)
	Failed     int           `json:"failed"`     // refused, turned away or not attempted
	Results    []BatchResult `json:"results"`    // one per event, in the request's order
}

// Keys is the body of /keys: what a verifier pins.
type Keys struct {
	Origin      string `json:"origin"`
	LogKey      string `json:"log_key"`
	OperatorKey string `json:"operator_key"`
}

// An Actor is the body of /api/v1/actors/{id}: an enrolled actor and
// every key it held.
type Actor struct {
	ID      string          `json:"id"`
	Role    provenance.Role `json:"role"`
	Name    string          `json:"name"`
	Key     string          `json:"key"`
	Revoked bool            `json:"revoked"`
	Keys    []KeyWindow     `json:"keys"`
}

// A KeyWindow is a key an actor held, from the log index of its
// enrollment until its revocation.
type KeyWindow struct {
	Key     string  `json:"key"`
	From    uint64  `json:"from"`
	To      *uint64 `json:"to,omitempty"` // the revocation's index
	Revoked bool    `json:"revoked"`
}
