package web

import (
	"context"
	"errors"
	"net/http"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
)

// An errorClass is how one domain error is answered over HTTP.
type errorClass struct {
	err    error
	status int
	code   string
}

// errorClasses maps domain errors to status codes and error codes, tested
// in order with errors.Is (ErrRevoked before ErrKeyNotValid, which it
// matches too). It is never modified.
var errorClasses = []errorClass{
	{provenance.ErrMalformedEvent, http.StatusBadRequest, "malformed_event"},
	{provenance.ErrBadDigitalLink, http.StatusBadRequest, "bad_digital_link"},
	{provenance.ErrBadSignature, http.StatusBadRequest, "bad_signature"},
	{merkle.ErrInvalidLeaf, http.StatusBadRequest, "malformed_event"},
	{merkle.ErrOutOfRange, http.StatusBadRequest, "out_of_range"},
	{provenance.ErrNotFound, http.StatusNotFound, "not_found"},
	{provenance.ErrNotCustodian, http.StatusForbidden, "not_custodian"},
	{provenance.ErrWrongReceiver, http.StatusForbidden, "wrong_receiver"},
	{provenance.ErrWrongRole, http.StatusForbidden, "wrong_role"},
	{provenance.ErrRevoked, http.StatusForbidden, "revoked"},
	{provenance.ErrKeyNotValid, http.StatusForbidden, "key_not_valid"},
	{provenance.ErrBadClaim, http.StatusForbidden, "bad_claim"},
	{provenance.ErrNotParty, http.StatusForbidden, "not_party"},
	{provenance.ErrStalePrev, http.StatusConflict, "stale_prev"},
	{provenance.ErrAlreadyRegistered, http.StatusConflict, "already_registered"},
	{provenance.ErrAlreadyEnrolled, http.StatusConflict, "already_enrolled"},
	{provenance.ErrClaimUsed, http.StatusConflict, "claim_used"},
	{provenance.ErrDisputed, http.StatusConflict, "disputed"},
	{provenance.ErrNotDisputed, http.StatusConflict, "not_disputed"},
	{provenance.ErrDelivered, http.StatusConflict, "delivered"},
	{provenance.ErrNoHandoff, http.StatusConflict, "no_handoff"},
}

// storageFull are the errors of a write that found no room: a full disk,
// a user's full quota, a file at its size limit. The client may send the
// event again once the operator made room: it is appended then, or, if it
// did reach the log, answered as a duplicate with its receipt.
var storageFull = []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG}

// storageFullMessage is what a client is told when storage is full.
const storageFullMessage = "the server's disk is full; the event was not stored; retry later"

// statusClientClosed answers a request whose client went away before it
// was done (nginx's 499): nobody reads it, but the request log and the
// metrics say what happened instead of an internal error.
const statusClientClosed = 499

// classify returns the status and error code for err. Storage full is
// 503, "storage_full", as is no write slot free in time, "overloaded"; a
// client gone while its request was handled is
// 499, "client_closed". An error that is no known domain error is
// internal: 500, "internal".
func classify(err error) (status int, code string) {
	if errors.Is(err, context.Canceled) {
		return statusClientClosed, "client_closed"
	}
	if errors.Is(err, errOverloaded) {
		return http.StatusServiceUnavailable, "overloaded"
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, "too_large"
	}
	for _, e := range storageFull {
		if errors.Is(err, e) {
			return http.StatusServiceUnavailable, "storage_full"
		}
	}
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

// apiError is the JSON body of every API error.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// abortJSON answers err as a JSON error. Domain errors say what was wrong;
// a full disk is logged in full and the client told to retry later;
// anything else is logged in full and the client sees "internal error".
func (s *Server) abortJSON(c *gin.Context, err error) {
	status, body, retry := s.errorOf(c, err)
	if retry != "" {
		c.Header("Retry-After", retry)
	}
	s.jsonError(c, status, body.Code, body.Message)
}

// errorOf returns how err is answered: its status, the error body and the
// Retry-After header, if it asks for one. It logs what the client is not
// told: the cause of a full disk or of an internal error.
func (s *Server) errorOf(c *gin.Context, err error) (status int, body apiErrorBody, retryAfter string) {
	status, code := classify(err)
	msg := err.Error()
	switch {
	case code == "overloaded":
		retryAfter, msg = "1", "the server is at capacity; retry after 1 second"
	case code == "storage_full":
		s.log.ErrorContext(c.Request.Context(), "storage full", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		retryAfter, msg = "60", storageFullMessage
	case status >= 500:
		s.log.ErrorContext(c.Request.Context(), "internal error", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		msg = "internal error"
	}
	return status, apiErrorBody{Code: code, Message: msg}, retryAfter
}

// jsonError answers a JSON error the server itself detected.
func (s *Server) jsonError(c *gin.Context, status int, code, msg string) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, apiError{apiErrorBody{Code: code, Message: msg}})
}
