package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle/tilelog"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/sqlstore"
)

// rebuildShared rebuilds the index in the database index names from the
// log c.server serves, read through its tiles and verified against the
// keys p pins.
func (c *conn) rebuildShared(ctx context.Context, index string, p *pinFlags) error {
	dsn, ok := strings.CutPrefix(index, "mysql://")
	if !ok {
		return usagef("--index: want mysql://user:password@tcp(host:3306)/dbname")
	}
	where, err := sqlstore.Describe(dsn)
	if err != nil {
		return usagef("--index mysql://...: %v", err)
	}
	if c.server == "" {
		return usagef("a shared index is rebuilt from the log a provd serves: give --server URL (a replica of the log)")
	}
	trust, err := p.trust()
	if err != nil {
		return err
	}
	if trust == nil {
		return usagef("pin the log's keys: --policy FILE, or --log-key and --operator-key; "+
			"\"prov keys --server %s --out keys.policy\" writes FILE from the server's answer (trust on first use)", c.server)
	}
	client, err := tilelog.NewClient(tilelog.ClientConfig{URL: c.server, LogKey: trust.LogKey, Policy: trust.Policy})
	if err != nil {
		return usagef("--server: %v", err)
	}
	cp, err := client.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: dsn})
	if err != nil {
		return fmt.Errorf("rebuild: index %s: %w", where, err)
	}
	defer store.Close()
	recorded, err := store.LogName(ctx)
	if err != nil {
		return fmt.Errorf("rebuild: index %s: %w", where, err)
	}
	if recorded != "" && !datadir.SameLog(recorded, *trust) {
		return fmt.Errorf("rebuild: index %s: %w: it was built from %q, not from the log of the pinned %s; nothing was changed",
			where, sqlstore.ErrOtherLog, recorded, trustSummary(*trust))
	}
	if err := provenance.Rebuild(ctx, provenance.ServiceConfig{Log: client.Snapshot(cp), Store: store, Trust: *trust}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "replayed %d log positions from %s (checkpoint size %d) into the index mysql %s\n", cp.Size, client.URL(), cp.Size, where)
	return nil
}
