package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/sqlstore"
)

// The shared index is wired here, in provd: datadir opens data
// directories without linking the MySQL driver.

// mysqlScheme starts --index's value for a MySQL or MariaDB index; a DSN
// of go-sql-driver/mysql follows it.
const mysqlScheme = "mysql://"

// indexDSN returns the DSN that --index names, or "" for the index in the
// data directory.
func indexDSN(index string) (string, error) {
	switch {
	case index == "bolt":
		return "", nil
	case strings.HasPrefix(index, mysqlScheme):
		dsn := strings.TrimPrefix(index, mysqlScheme)
		if _, err := sqlstore.Describe(dsn); err != nil {
			return "", fmt.Errorf("--index mysql://...: %w", err)
		}
		return dsn, nil
	}
	shown := index
	if i := strings.LastIndex(index, "@"); i >= 0 {
		shown = "..." + index[i:] // not the password
	}
	return "", fmt.Errorf("--index %q: want bolt or mysql://user:password@tcp(host:3306)/dbname", shown)
}

// indexName describes --index for the start-up output, without the
// password.
func indexName(dsn string) string {
	if dsn == "" {
		return "bolt (in the data directory)"
	}
	d, _ := sqlstore.Describe(dsn)
	return "mysql " + d
}

// indexOpener returns the datadir.IndexOpener of a MySQL index, or nil
// for the index in the data directory.
func indexOpener(dsn string) datadir.IndexOpener {
	if dsn == "" {
		return nil
	}
	return func(ctx context.Context, log string, logger *slog.Logger) (provenance.Store, func() error, error) {
		s, err := sqlstore.Open(ctx, sqlstore.Config{DSN: dsn, Log: log, Logger: logger})
		if err != nil {
			return nil, nil, fmt.Errorf("--index: %w", err)
		}
		return s, s.Close, nil
	}
}
