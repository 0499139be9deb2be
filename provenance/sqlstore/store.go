package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/provtrail/provtrail/provenance"
)

const (
	metaTable    = "provtrail_meta"
	actorTable   = "provtrail_actors"
	itemTable    = "provtrail_items"
	claimTable   = "provtrail_claims"
	refusedTable = "provtrail_refused"
	// format names the layout of the tables below; Open drops an index
	// in any other. Every layout keeps provtrail_meta's format column, so
	// that Open can read it.
	format = "2"
	// incomplete is the format of an index being created or reset.
	incomplete = ""
)

// tableOptions are every table's engine and character set.
const tableOptions = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// schema creates the tables, meta first.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS ` + metaTable + ` (
		id      TINYINT UNSIGNED NOT NULL PRIMARY KEY,
		format  VARCHAR(32) NOT NULL,
		applied BIGINT UNSIGNED NOT NULL,
		log     VARCHAR(1024) NOT NULL
	)` + tableOptions,
	`CREATE TABLE IF NOT EXISTS ` + actorTable + ` (
		id     VARBINARY(255) NOT NULL PRIMARY KEY,
		record JSON NOT NULL
	)` + tableOptions,
	`CREATE TABLE IF NOT EXISTS ` + itemTable + ` (
		path   VARBINARY(255) NOT NULL PRIMARY KEY,
		record JSON NOT NULL
	)` + tableOptions,
	`CREATE TABLE IF NOT EXISTS ` + claimTable + ` (
		hash   BINARY(32) NOT NULL PRIMARY KEY,
		record JSON NOT NULL
	)` + tableOptions,
	`CREATE TABLE IF NOT EXISTS ` + refusedTable + ` (
		idx    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
		reason MEDIUMTEXT NOT NULL
	)` + tableOptions,
}

// Upserts are sent in statements of at most maxRows rows and about
// maxBytes of records, well under the servers' default
// max_allowed_packet (16 MiB on MariaDB).
const (
	maxRows  = 500
	maxBytes = 4 << 20
)

// DefaultMaxConns is Config.MaxConns's default.
const DefaultMaxConns = 16

// ErrOtherLog is returned by Open for an index built from another log
// than Config.Log.
var ErrOtherLog = errors.New("the index was built from another log")

// Config configures Open.
type Config struct {
	// DSN names the database, in the form of go-sql-driver/mysql:
	// user:password@tcp(host:3306)/dbname?param=value.
	DSN string
	// Log names the log the index is derived from (provd: its origin, log
	// key and Trillian tree). The first Open records it; a later Open
	// with another Log fails with ErrOtherLog, so that a replica pointed
	// at the wrong database does not mix two logs in one index. "" checks
	// nothing.
	Log string
	// MaxConns bounds the connection pool: reads and saves beyond it
	// wait for a connection. Default DefaultMaxConns.
	MaxConns int
	// Logger receives the driver's messages (connections it dropped).
	// Default: discard.
	Logger *slog.Logger
}

var _ provenance.Store = (*Store)(nil)

// A Store is the provenance index in a MySQL or MariaDB database.
type Store struct {
	db *sql.DB
}

// Describe checks dsn and returns it without its password, to name the
// database in messages: user@tcp(host:3306)/dbname.
func Describe(dsn string) (string, error) {
	c, err := parseDSN(dsn)
	if err != nil {
		return "", err
	}
	return describe(c), nil
}

func describe(c *mysql.Config) string {
	return fmt.Sprintf("%s@%s(%s)/%s", c.User, c.Net, c.Addr, c.DBName)
}

func parseDSN(dsn string) (*mysql.Config, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("DSN: %w (want user:password@tcp(host:3306)/dbname)", err)
	}
	if c.DBName == "" {
		return nil, errors.New("DSN names no database (want user:password@tcp(host:3306)/dbname)")
	}
	return c, nil
}

// Open connects to the database cfg.DSN names and returns the index in
// it, creating its tables on first use and dropping an index of another
// format. Close the Store when done.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	c, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = driverLogger{cfg.Logger}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	if _, ok := c.Params["sql_mode"]; !ok {
		// Strict: a value that does not fit fails the Save rather than
		// being cut, and InnoDB is never replaced by another engine.
		c.Params["sql_mode"] = "'TRADITIONAL'"
	}
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	// Connections are renewed now and then, before a server or a proxy
	// drops them as idle, and so that a moved server is found again.
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	s := &Store{db: db}
	if err := s.init(ctx, c.DBName, cfg.Log); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: open index in %s: %w", describe(c), err)
	}
	return s, nil
}

// driverLogger passes the driver's messages to a slog.Logger.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) { d.l.Warn("mysql driver: " + fmt.Sprint(v...)) }

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// A querier is a *sql.DB or one of its connections.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// openLockWait is how long Open waits for other replicas' Opens.
const openLockWait = 60 * time.Second

// init creates the tables, or recreates them for another format, and
// checks or records the log the index is built from. It holds a lock
// named for the database meanwhile, so that of replicas starting at once
// on a new database one creates the tables and the others find them,
// rather than drop them under a replica already running.
func (s *Store) init(ctx context.Context, dbName, log string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// GET_LOCK names are server-wide and at most 64 characters long.
	lock := fmt.Sprintf("provtrail-index-%x", sha256.Sum256([]byte(dbName)))[:64]
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, ?)`, lock, int(openLockWait/time.Second)).Scan(&got); err != nil {
		return fmt.Errorf("lock the index: %w", err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("lock the index: another replica held it for %v", openLockWait)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		conn.QueryRowContext(rctx, `SELECT RELEASE_LOCK(?)`, lock).Scan(&got)
	}()

	if _, err := conn.ExecContext(ctx, schema[0]); err != nil {
		return fmt.Errorf("create %s: %w", metaTable, err)
	}
	var have string
	err = conn.QueryRowContext(ctx, `SELECT format FROM `+metaTable+` WHERE id = 1`).Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		have = incomplete
	case err != nil:
		return fmt.Errorf("read the index's format: %w", err)
	}
	if have != format {
		if err := recreate(ctx, conn); err != nil {
			return err
		}
	} else {
		for _, stmt := range schema[1:] {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("create tables: %w", err)
			}
		}
	}
	if log == "" {
		return nil
	}
	// Of replicas starting at once with different logs, one records its
	// own and the others read it back.
	if _, err := conn.ExecContext(ctx, `UPDATE `+metaTable+` SET log = ? WHERE id = 1 AND log = ''`, log); err != nil {
		return fmt.Errorf("record the index's log: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT log FROM `+metaTable+` WHERE id = 1`).Scan(&have); err != nil {
		return fmt.Errorf("read the index's log: %w", err)
	}
	if have != log {
		return fmt.Errorf("%w: it was built from %q, not %q: give this log a database of its own", ErrOtherLog, have, log)
	}
	return nil
}

// LogName returns the name of the log the index was recorded as built
// from (Config.Log of the first Open that gave one), or "" if none was.
func (s *Store) LogName(ctx context.Context) (string, error) {
	var log string
	if err := s.db.QueryRowContext(ctx, `SELECT log FROM `+metaTable+` WHERE id = 1`).Scan(&log); err != nil {
		return "", fmt.Errorf("read the index's log: %w", err)
	}
	return log, nil
}

// recreate drops the tables and creates them empty. The meta row is
// marked incomplete first and written last, so that a Save meanwhile is
// refused and an Open after a crash recreates them again.
func recreate(ctx context.Context, q querier) error {
	if _, err := q.ExecContext(ctx, `UPDATE `+metaTable+` SET format = ?, applied = 0 WHERE id = 1`, incomplete); err != nil {
		return fmt.Errorf("mark the index incomplete: %w", err)
	}
	for _, t := range []string{actorTable, itemTable, claimTable, refusedTable, metaTable} {
		if _, err := q.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return fmt.Errorf("drop %s: %w", t, err)
		}
	}
	for _, stmt := range schema {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO `+metaTable+` (id, format, applied, log) VALUES (1, ?, 0, '')
		ON DUPLICATE KEY UPDATE format = VALUES(format), applied = 0, log = ''`, format)
	if err != nil {
		return fmt.Errorf("record the index's format: %w", err)
	}
	return nil
}

// Applied implements provenance.Store.
func (s *Store) Applied(ctx context.Context) (uint64, error) {
	var at uint64
	err := s.db.QueryRowContext(ctx, `SELECT applied FROM `+metaTable+` WHERE id = 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errors.New("read the index's position: the index is being created")
	}
	if err != nil {
		return 0, fmt.Errorf("read the index's position: %w", err)
	}
	return at, nil
}

// get decodes the JSON record query selects by key into v, or returns an
// error matching provenance.ErrNotFound.
func (s *Store) get(ctx context.Context, query string, key []byte, what string, v any) error {
	var data []byte
	err := s.db.QueryRowContext(ctx, query, key).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s is not in the index", provenance.ErrNotFound, what)
	case err != nil:
		return fmt.Errorf("read %s from the index: %w", what, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s in the index: %w", what, err)
	}
	return nil
}

// Actor implements provenance.Store.
func (s *Store) Actor(ctx context.Context, id string) (provenance.ActorRecord, error) {
	var a provenance.ActorRecord
	err := s.get(ctx, `SELECT record FROM `+actorTable+` WHERE id = ?`, []byte(id), fmt.Sprintf("actor %q", id), &a)
	return a, err
}

// Item implements provenance.Store.
func (s *Store) Item(ctx context.Context, id provenance.ItemID) (provenance.ItemRecord, error) {
	var it provenance.ItemRecord
	err := s.get(ctx, `SELECT record FROM `+itemTable+` WHERE path = ?`, []byte(id.String()), "item "+id.String(), &it)
	return it, err
}

// Claim implements provenance.Store.
func (s *Store) Claim(ctx context.Context, claim [sha256.Size]byte) (provenance.ClaimRecord, error) {
	var c provenance.ClaimRecord
	err := s.get(ctx, `SELECT record FROM `+claimTable+` WHERE hash = ?`, claim[:], fmt.Sprintf("claim %x", claim[:4]), &c)
	return c, err
}

// Refused implements provenance.Store.
func (s *Store) Refused(ctx context.Context, from, to uint64) ([]provenance.Refusal, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT idx, reason FROM `+refusedTable+` WHERE idx >= ? AND idx < ? ORDER BY idx`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read refusals [%d, %d): %w", from, to, err)
	}
	defer rows.Close()
	var out []provenance.Refusal
	for rows.Next() {
		var r provenance.Refusal
		if err := rows.Scan(&r.Index, &r.Reason); err != nil {
			return nil, fmt.Errorf("read refusals [%d, %d): %w", from, to, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read refusals [%d, %d): %w", from, to, err)
	}
	return out, nil
}

// Save implements provenance.Store, in one transaction.
func (s *Store) Save(ctx context.Context, d provenance.Delta) error {
	if err := s.save(ctx, d); err != nil {
		return fmt.Errorf("save index [%d, %d): %w", d.From, d.To, err)
	}
	return nil
}

func (s *Store) save(ctx context.Context, d provenance.Delta) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var at uint64
	var have string
	err = tx.QueryRowContext(ctx, `SELECT applied, format FROM `+metaTable+` WHERE id = 1 FOR UPDATE`).Scan(&at, &have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errors.New("the index is being created")
	case err != nil:
		return fmt.Errorf("lock the index's position: %w", err)
	case have != format:
		return errors.New("the index is being reset or created")
	case at != d.From:
		return fmt.Errorf("%w: delta [%d, %d), index at %d", provenance.ErrStoreGap, d.From, d.To, at)
	}
	var rows []row
	for _, a := range d.Actors {
		if rows, err = appendJSON(rows, []byte(a.State.ID), a); err != nil {
			return err
		}
	}
	if err := upsert(ctx, tx, actorTable, "id", "record", rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, it := range d.Items {
		if rows, err = appendJSON(rows, []byte(it.State.ID.String()), it); err != nil {
			return err
		}
	}
	if err := upsert(ctx, tx, itemTable, "path", "record", rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, c := range d.Claims {
		if rows, err = appendJSON(rows, c.Claim[:], c); err != nil {
			return err
		}
	}
	if err := upsert(ctx, tx, claimTable, "hash", "record", rows); err != nil {
		return err
	}
	rows = rows[:0]
	for _, r := range d.Refused {
		rows = append(rows, row{key: r.Index, value: r.Reason})
	}
	if err := upsert(ctx, tx, refusedTable, "idx", "reason", rows); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+metaTable+` SET applied = ? WHERE id = 1`, d.To); err != nil {
		return fmt.Errorf("set the index's position: %w", err)
	}
	return tx.Commit()
}

// A row is a key and its value for upsert.
type row struct {
	key   any // []byte or uint64
	value string
}

// appendJSON appends the JSON encoding of v under key. The record goes
// as a string, not []byte: with the driver's interpolateParams, []byte
// is sent as a _binary literal, which MySQL refuses for a JSON column.
func appendJSON(rows []row, key []byte, v any) ([]row, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return rows, err
	}
	return append(rows, row{key: key, value: string(b)}), nil
}

// upsert inserts rows into table, replacing the value of a key already
// there, a few hundred rows a statement.
func upsert(ctx context.Context, tx *sql.Tx, table, keyCol, valueCol string, rows []row) error {
	for len(rows) > 0 {
		n, size := 0, 0
		for n < len(rows) && n < maxRows && (n == 0 || size+len(rows[n].value) <= maxBytes) {
			size += len(rows[n].value)
			n++
		}
		var q strings.Builder
		q.WriteString("INSERT INTO " + table + " (" + keyCol + ", " + valueCol + ") VALUES ")
		args := make([]any, 0, 2*n)
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?)")
			args = append(args, r.key, r.value)
		}
		q.WriteString(" ON DUPLICATE KEY UPDATE " + valueCol + " = VALUES(" + valueCol + ")")
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("write %d rows of %s: %w", n, table, err)
		}
		rows = rows[n:]
	}
	return nil
}

// Reset implements provenance.Store. The meta row is marked incomplete
// first, so that a Save meanwhile is refused and an Open after a crash
// recreates the tables; the tables are then emptied, and the meta row set
// back to position 0. The log the index is built from stays recorded.
func (s *Store) Reset(ctx context.Context) error {
	res, err := s.db.ExecContext(ctx, `UPDATE `+metaTable+` SET format = ?, applied = 0 WHERE id = 1`, incomplete)
	if err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		// No row changed: there is no meta row, or it is marked already
		// (an Open or Reset that did not finish). Start from scratch.
		if err := recreate(ctx, s.db); err != nil {
			return fmt.Errorf("reset index: %w", err)
		}
		return nil
	}
	for _, t := range []string{actorTable, itemTable, claimTable, refusedTable} {
		if _, err := s.db.ExecContext(ctx, `TRUNCATE TABLE `+t); err != nil {
			return fmt.Errorf("reset index: empty %s: %w", t, err)
		}
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE `+metaTable+` SET format = ? WHERE id = 1`, format); err != nil {
		return fmt.Errorf("reset index: %w", err)
	}
	return nil
}

// Dump writes the whole index to w as provenance/boltstore's Dump does:
// one line a record, "table key-in-hex value", in key order, the applied
// position and the format first, the tables after each other (named as
// boltstore's buckets: actors, items, claims, refused). Two indexes of
// the same log prefix dump alike. It reads one snapshot of the index, for
// comparing it with one rebuilt from the log.
func (s *Store) Dump(ctx context.Context, w io.Writer) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("dump index: %w", err)
	}
	defer tx.Rollback()
	var at uint64
	var have string
	if err := tx.QueryRowContext(ctx, `SELECT applied, format FROM `+metaTable+` WHERE id = 1`).Scan(&at, &have); err != nil {
		return fmt.Errorf("dump index: %w", err)
	}
	if _, err := fmt.Fprintf(w, "meta %x %s\nmeta %x %s\n", "applied", binary.BigEndian.AppendUint64(nil, at), "format", have); err != nil {
		return err
	}
	for _, t := range []struct{ table, name, query string }{
		{actorTable, "actors", `SELECT id, record FROM ` + actorTable + ` ORDER BY id`},
		{itemTable, "items", `SELECT path, record FROM ` + itemTable + ` ORDER BY path`},
		{claimTable, "claims", `SELECT hash, record FROM ` + claimTable + ` ORDER BY hash`},
		{refusedTable, "refused", `SELECT idx, reason FROM ` + refusedTable + ` ORDER BY idx`},
	} {
		if err := dumpTable(ctx, tx, w, t.name, t.query, t.table == refusedTable); err != nil {
			return fmt.Errorf("dump index: %s: %w", t.table, err)
		}
	}
	return tx.Commit()
}

// dumpTable writes the rows query selects, keys in hex; numeric keys as
// boltstore keeps them, 8 bytes big-endian.
func dumpTable(ctx context.Context, tx *sql.Tx, w io.Writer, name, query string, numeric bool) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key, value []byte
		if numeric {
			var i uint64
			if err := rows.Scan(&i, &value); err != nil {
				return err
			}
			key = binary.BigEndian.AppendUint64(nil, i)
		} else if err := rows.Scan(&key, &value); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s %x %s\n", name, key, value); err != nil {
			return err
		}
	}
	return rows.Err()
}
