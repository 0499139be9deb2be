package main

import (
	"context"
	"errors"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
)

// A replicaService is the Service of a replica of a shared log. The
// Service checks an event against the log positions it has applied, and
// it reads what other replicas appended only every --poll-interval: an
// event that depends on one just accepted by another replica (a handoff
// right after the register, through a load balancer) would be refused
// for no reason but that lag. So a refusal is answered only once this
// replica has applied the whole log as it was when the refusal came: if
// it was behind, it catches up and checks the event once more.
//
// TODO(provenance owners): this belongs in Service.Submit, which could
// catch up before refusing without a second check.
type replicaService struct {
	*provenance.Service
	log merkle.Log
}

// Submit is Service.Submit, retried once after catching up with the log
// when a refusal may come from this replica lagging it.
func (s replicaService) Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error) {
	r, err := s.Service.Submit(ctx, leaf)
	var re *provenance.RuleError
	if !errors.As(err, &re) || re.Kind == "" || errors.Is(err, provenance.ErrMalformedEvent) {
		return r, err // accepted, or refused whatever the log holds
	}
	// A refusal on submission names the next position this replica would
	// apply; one on replay, the event's own position, inside the log.
	cp, cerr := s.log.Checkpoint(ctx)
	if cerr != nil || cp.Size <= re.Index {
		return r, err // the replica was current: the refusal stands
	}
	if werr := s.Service.WaitApplied(ctx, cp.Size-1); werr != nil {
		return r, err
	}
	return s.Service.Submit(ctx, leaf)
}
