package web

import (
	"context"
	"errors"
	"net/http"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
)

// errorStatus is the HTTP status of each refusal provenance names with an
// error code (provenance.ErrorCode; its table says which error a code
// stands for). It is never modified.
var errorStatus = map[error]int{
	provenance.ErrMalformedEvent:    http.StatusBadRequest,
	provenance.ErrBadDigitalLink:    http.StatusBadRequest,
	provenance.ErrBadSignature:      http.StatusBadRequest,
	merkle.ErrOutOfRange:            http.StatusBadRequest,
	provenance.ErrNotFound:          http.StatusNotFound,
	provenance.ErrNotCustodian:      http.StatusForbidden,
	provenance.ErrWrongReceiver:     http.StatusForbidden,
	provenance.ErrWrongRole:         http.StatusForbidden,
	provenance.ErrRevoked:           http.StatusForbidden,
	provenance.ErrKeyNotValid:       http.StatusForbidden,
	provenance.ErrBadClaim:          http.StatusForbidden,
	provenance.ErrNotParty:          http.StatusForbidden,
	provenance.ErrStalePrev:         http.StatusConflict,
	provenance.ErrAlreadyRegistered: http.StatusConflict,
	provenance.ErrAlreadyEnrolled:   http.StatusConflict,
	provenance.ErrClaimUsed:         http.StatusConflict,
	provenance.ErrDisputed:          http.StatusConflict,
	provenance.ErrNotDisputed:       http.StatusConflict,
	provenance.ErrDelivered:         http.StatusConflict,
	provenance.ErrNoHandoff:         http.StatusConflict,
	// An event time the rules refuse: the event is well formed, but says
	// it happened when it cannot have (the signer's clock is off).
	provenance.ErrTimeInFuture:         http.StatusUnprocessableEntity,
	provenance.ErrTimeBeforePrevious:   http.StatusUnprocessableEntity,
	provenance.ErrTimeBeforeEnrollment: http.StatusUnprocessableEntity,
	provenance.ErrNotAttempted:         http.StatusFailedDependency, // in a batch's results only
	merkle.ErrReadOnly:                 http.StatusForbidden,        // a write sent to a mirror
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
// 499, "client_closed". A refusal has provenance's code and the status
// errorStatus gives it. Any other error is internal: 500, "internal".
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
	if code := provenance.ErrorCode(err); code != "" {
		if status, ok := errorStatus[provenance.CodeError(code)]; ok {
			return status, code
		}
	}
	return http.StatusInternalServerError, "internal"
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
func (s *Server) errorOf(c *gin.Context, err error) (status int, body api.Error, retryAfter string) {
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
	return status, api.Error{Code: code, Message: msg}, retryAfter
}

// jsonError answers a JSON error the server itself detected.
func (s *Server) jsonError(c *gin.Context, status int, code, msg string) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, api.ErrorResponse{Error: api.Error{Code: code, Message: msg}})
}
