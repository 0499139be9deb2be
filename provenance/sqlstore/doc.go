// Package sqlstore keeps the provenance index in MySQL or MariaDB, where
// several provd replicas share it: each replica's Service reads records
// through it and saves what it applied, and whoever saves a range of the
// log first wins (see [provenance.Store]). A replica keeps nothing of the
// index but its changes since its last save, so it starts without loading
// anything and can be replaced at any time.
//
// # Opening
//
// [Open] takes a [Config] whose DSN is in the form of
// github.com/go-sql-driver/mysql, the driver Trillian uses too:
//
//	user:password@tcp(host:3306)/provtrail
//
// with optional parameters after a '?' (tls=true, timeout=5s, ...; see the
// driver's documentation). The database must exist. provd takes it as
// --index mysql://DSN (docs/scale-out.md). The Store owns a pool of at
// most [Config.MaxConns] connections, closed by [Store.Close].
//
// The user needs SELECT, INSERT, UPDATE, DELETE, CREATE and DROP on the
// database:
//
//	CREATE DATABASE provtrail CHARACTER SET utf8mb4;
//	CREATE USER 'provd'@'10.0.0.%' IDENTIFIED BY '...';
//	GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON provtrail.* TO 'provd'@'10.0.0.%';
//
// # Schema
//
// Open creates the tables below if they are missing (InnoDB, utf8mb4).
// Their names start with provtrail_, so the index may share a database
// with Trillian's tables, which it never touches; a database of its own is
// simpler to back up and to drop.
//
//	provtrail_meta     id = 1 (one row), format, applied (BIGINT UNSIGNED), log
//	provtrail_actors   id VARBINARY(255) primary key, record JSON
//	provtrail_items    path VARBINARY(255) primary key (ItemID.String()), record JSON
//	provtrail_claims   hash BINARY(32) primary key, record JSON
//	provtrail_refused  idx BIGINT UNSIGNED primary key (log position), reason MEDIUMTEXT
//
// Records are the JSON encoding of [provenance.ActorRecord],
// [provenance.ItemRecord] and [provenance.ClaimRecord], as in
// provenance/boltstore. The meta row holds the log position the index has
// applied up to, the format of these tables, and the log the index was
// built from ([Config.Log]).
//
// An index of another format is dropped and created again, empty, when
// the Store opens, so that the Service rebuilds it from the log. Every
// change of the tables' layout, and [Store.Reset], first marks the meta
// row as incomplete: a Save meanwhile is refused, and an Open after a
// crash halfway starts over.
//
// # Saving
//
// A [Store.Save] is one transaction: it locks the meta row (SELECT ...
// FOR UPDATE), refuses a delta that does not start at the applied
// position (provenance.ErrStoreGap), upserts every record (INSERT ... ON
// DUPLICATE KEY UPDATE, many rows a statement), sets the applied position
// and commits. Two replicas saving at once take turns on the meta row; a
// replica that dies, or whose connection drops, in the middle of a Save
// leaves nothing of it, since the server rolls its transaction back.
// Reads are single SELECTs and see the index before or after a Save.
//
// # Caveats
//
//   - On MySQL, JSON columns store a normalized form: records read back
//     alike, but [Store.Dump] prints them as MySQL does (keys reordered,
//     no \u003c escapes). On MariaDB, JSON is text and kept as written,
//     so a dump matches boltstore's line for line but for the format.
//   - Reset empties the tables with TRUNCATE TABLE, which commits on its
//     own, so readers may see some tables emptied and not others: run it
//     (provenance.Rebuild) with every replica of the index stopped.
//   - The scan counters of provenance/boltstore are not kept here: each
//     replica counts the scans it serves in its own data directory.
package sqlstore
