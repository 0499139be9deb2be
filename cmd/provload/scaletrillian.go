package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"github.com/provtrail/provtrail/cmd/internal/client"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/sqlstore"
)

// A replicaRow is what one step measured of one replica.
type replicaRow struct {
	writeRate float64 // events/s over the replica's share of the step's POSTs
	idle      int64   // anonymous RSS after the pause, bytes
	peak      int64   // the largest sampled during the step's writes and catch-up
	p50, p99  time.Duration
}

// A trillianRow is what one step of the Trillian scale benchmark measured.
type trillianRow struct {
	items    int
	events   uint64
	bulkRate float64 // events/s from the start of the bulk queueing until both replicas applied them and the index was saved
	replicas [2]replicaRow
	// firstPage is the time from the start of a third replica, on a data
	// directory holding nothing but the keys, until it served its first
	// history page.
	firstPage  time.Duration
	index, log dbSize // the index's tables, Trillian's tables
}

// A dbSize is what information_schema says of a database's tables.
type dbSize struct {
	rows  int64 // InnoDB's estimate, just after ANALYZE TABLE
	bytes int64 // data and indexes
}

const trillianHeader = "   items  events in log  bulk events/s  write events/s A/B  RSS anon idle MB A/B  RSS anon peak MB A/B  page p50 ms A/B  page p99 ms A/B  3rd replica 1st page s  index rows  index MB  Trillian rows  Trillian MB"

func (r trillianRow) String() string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	a, b := r.replicas[0], r.replicas[1]
	return fmt.Sprintf("%8d  %13d  %13.0f  %18s  %20s  %20s  %15s  %15s  %22.3f  %10d  %8.1f  %13d  %11.1f",
		r.items, r.events, r.bulkRate,
		fmt.Sprintf("%.0f / %.0f", a.writeRate, b.writeRate),
		fmt.Sprintf("%.1f / %.1f", mb(a.idle), mb(b.idle)),
		fmt.Sprintf("%.1f / %.1f", mb(a.peak), mb(b.peak)),
		fmt.Sprintf("%.2f / %.2f", ms(a.p50), ms(b.p50)),
		fmt.Sprintf("%.2f / %.2f", ms(a.p99), ms(b.p99)),
		r.firstPage.Seconds(), r.index.rows, mb(r.index.bytes), r.log.rows, mb(r.log.bytes))
}

// scaleTrillianRun is the scale benchmark on Trillian: it starts MariaDB
// and a Trillian log server and signer (through trilliantest, the
// signer tuned by -signer-batch and -sequencer-interval), makes a tree
// and a database for the index, and starts two provd replicas on them
// (--log trillian --index mysql://...), each on a data directory of its
// own under -data holding copies of the same keys. For each step it
// grows the log to that many items: all but -posted of the step's items
// are queued straight into Trillian's queue tables, in bulk, for the
// signer to integrate and the replicas to apply; the last -posted are
// POSTed through the replicas, half to each, which gives the write rate.
// It then reads each replica's idle memory, times a third replica
// started on a data directory holding only the keys until it serves its
// first history page, reads the sizes of the database's tables, and
// loads random items' history pages from each replica.
func scaleTrillianRun(ctx context.Context, cfg Config, stdout io.Writer) error {
	if err := checkFresh(cfg.Data); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	t0 := time.Now()
	c, skip, err := trilliantest.StartWith(trilliantest.Options{SequencerInterval: cfg.SequencerInterval, BatchSize: cfg.SignerBatch, BufferPool: cfg.BufferPool})
	if skip != "" {
		return fmt.Errorf("-trillian: %s: %s", skip, trilliantest.InstallHint())
	}
	if err != nil {
		return fmt.Errorf("-trillian: start MariaDB and Trillian: %w", err)
	}
	defer c.Stop()
	tree, err := c.CreateTree(ctx, trillian.TreeType_LOG)
	if err != nil {
		return err
	}
	dsn, _, err := c.CreateDatabase() // dropped with the cluster's directory
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trillian  MariaDB, log server and signer (--batch_size=%d --sequencer_interval=%v, MariaDB buffer pool %s) in %s, started in %v; tree %d; index in %s\n",
		cfg.SignerBatch, cfg.SequencerInterval, cfg.BufferPool, c.Dir, time.Since(t0).Round(time.Millisecond), tree, dbName(dsn))

	args := []string{"--log", "trillian", "--trillian-addr", c.RPCAddr, "--trillian-tree", strconv.FormatInt(tree, 10), "--index", "mysql://" + dsn}
	dirs := [2]string{filepath.Join(cfg.Data, "a"), filepath.Join(cfg.Data, "b")}
	var reps [2]*child
	var logs []*os.File
	defer func() {
		for _, p := range reps {
			if p != nil {
				p.stop()
			}
		}
		for _, f := range logs { // after the replicas' last words
			f.Close()
		}
	}()
	for i, dir := range dirs {
		if i > 0 {
			if err := copyKeys(dirs[0], dir); err != nil {
				return err
			}
		}
		logFile, err := createLog(dir)
		if err != nil {
			return err
		}
		logs = append(logs, logFile)
		p, took, err := startProvd(ctx, cfg.Provd, dir, logFile, args...)
		if err != nil {
			return fmt.Errorf("replica %c: %w", 'A'+i, err)
		}
		reps[i] = p
		fmt.Fprintf(stdout, "replica %c on %s: %s, /healthz 200 after %v; its output in %s\n", 'A'+i, dir, p.url, took.Round(time.Millisecond), logFile.Name())
	}

	op, _, err := merkle.LoadKeyFile(filepath.Join(dirs[0], "operator.key"))
	if err != nil {
		return fmt.Errorf("operator key: %w", err)
	}
	cl, err := newClient(reps[0].url, cfg.Concurrency, cfg.Timeout)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	a, _, err := enroll(ctx, cl, op, cfg.Couriers, now)
	cl.CloseIdleConnections()
	if err != nil {
		return err
	}
	serials := strings.ToUpper(strings.TrimPrefix(a.prefix, "load-")) + "-"
	enrolled := uint64(1 + len(a.couriers))
	fmt.Fprintf(stdout, "enrolled  %s and %d couriers through replica A; items of 1 register + %d handoff/receive pairs; per step, all but %d items queued into Trillian in bulk, %d at a time, and those POSTed %d events a POST by %d workers to each replica\n",
		a.maker, len(a.couriers), cfg.Hops, cfg.Posted, cfg.Chunk, cfg.Batch, cfg.Concurrency)

	queue, err := sql.Open("mysql", c.MySQLURI+"?interpolateParams=true")
	if err != nil {
		return err
	}
	defer queue.Close()
	index, err := sqlstore.Open(ctx, sqlstore.Config{DSN: dsn})
	if err != nil {
		return err
	}
	defer index.Close()
	q := &bulkQueue{db: queue, tree: tree}

	var rows []trillianRow
	have := 0
	for _, step := range cfg.Steps {
		row := trillianRow{items: step}
		want := enrolled + uint64(step)*uint64(1+2*cfg.Hops)
		var samplers [2]*sampler
		for i, p := range reps {
			samplers[i] = sample(p.cmd.Process.Pid, sampleEvery)
		}
		bulkTo := max(have, step-cfg.Posted)
		t0 := time.Now()
		queued, err := q.grow(ctx, cfg, a, serials, have, bulkTo, now, stdout)
		if err == nil {
			// Both replicas apply what was queued; the index is saved
			// once by whichever saves first.
			err = waitApplied(ctx, reps, index, want-uint64(step-bulkTo)*uint64(1+2*cfg.Hops), stdout)
		}
		if queued > 0 {
			row.bulkRate = float64(queued) / time.Since(t0).Seconds()
		}
		if err == nil {
			err = postToReplicas(ctx, cfg, reps, a, serials, bulkTo, step, now, &row, stdout)
		}
		if err == nil {
			err = waitApplied(ctx, reps, index, want, stdout)
		}
		for i, s := range samplers {
			peak, serr := s.stop()
			err = errors.Join(err, serr)
			row.replicas[i].peak = peak
		}
		if err != nil {
			return err
		}
		have = step
		row.events = want

		if err := client.Wait(ctx, cfg.Idle); err != nil {
			return err
		}
		for i, p := range reps {
			if row.replicas[i].idle, err = rssAnon(p.cmd.Process.Pid); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "idle      replicas' RSS anon %.1f / %.1f MB\n", mb(row.replicas[0].idle), mb(row.replicas[1].idle))

		page := func(base string) string {
			return provenance.ItemID{GTIN: loadGTIN, Serial: serials + strconv.Itoa(rand.IntN(step))}.DigitalLink(base)
		}
		fresh := filepath.Join(cfg.Data, fmt.Sprintf("fresh-%d", step))
		if row.firstPage, err = thirdReplica(ctx, cfg, dirs[0], fresh, args, page, stdout); err != nil {
			return err
		}

		if row.index, err = tableSizes(ctx, dsn, stdout); err != nil {
			return err
		}
		if row.log, err = tableSizes(ctx, c.MySQLURI, stdout); err != nil {
			return err
		}

		rcfg := cfg
		rcfg.Concurrency = cfg.ReadConcurrency
		for i, p := range reps {
			base := p.url
			pages := readLoad(ctx, rcfg, func() string { return page(base) })
			if err := ctx.Err(); err != nil {
				return err
			}
			if pages.Failed > 0 || len(pages.Latencies) == 0 {
				return fmt.Errorf("replica %c: pages of %d items: %d of %d failed (first: %v)", 'A'+i, step, pages.Failed, pages.Failed+len(pages.Latencies), pages.FirstErr)
			}
			row.replicas[i].p50, row.replicas[i].p99 = pages.Percentile(0.50), pages.Percentile(0.99)
			after, err := rssAnon(p.cmd.Process.Pid)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "pages     replica %c: %d of random items in %v, %d workers; its RSS anon after them %.1f MB\n",
				'A'+i, len(pages.Latencies), pages.Elapsed.Round(time.Millisecond), cfg.ReadConcurrency, mb(after))
		}
		fmt.Fprintf(stdout, "%s\n%s\n", trillianHeader, row)
		rows = append(rows, row)
	}
	fmt.Fprintf(stdout, "\n%s\n", trillianHeader)
	for _, r := range rows {
		fmt.Fprintln(stdout, r)
	}
	return nil
}

// A bulkQueue queues leaves into a Trillian tree by writing its queue
// tables (LeafData and Unsequenced, as trillian_log_server's QueueLeaf
// does, one row of each a leaf) many rows a statement, which builds a
// large log far faster than one QueueLeaf transaction a leaf. The signer
// integrates queued leaves in the order of their queue timestamps; each
// transaction's are later than the last one's, so the log holds the
// leaves in the order queued and every item's chain in its order.
type bulkQueue struct {
	db   *sql.DB
	tree int64
	last int64 // the latest queue timestamp used, in ns
}

// bulkRows is how many leaves one INSERT carries, and bulkTx how many one
// transaction commits.
const bulkRows, bulkTx = 500, 10000

// grow signs the chains of the items numbered from to to-1, cfg.Chunk
// items at a time, and queues them; it returns how many events it queued.
func (q *bulkQueue) grow(ctx context.Context, cfg Config, a actors, serials string, from, to int, now time.Time, stdout io.Writer) (int, error) {
	queued := 0
	for first := from; first < to; first += cfg.Chunk {
		n := min(cfg.Chunk, to-first)
		t0 := time.Now()
		_, chains, err := presign(a, cfg.Hops, serials, first, n, now)
		if err != nil {
			return 0, err
		}
		signed := time.Since(t0)
		var leaves [][]byte
		for _, chain := range chains {
			for _, ev := range chain {
				leaves = append(leaves, ev.leaf)
			}
		}
		t1 := time.Now()
		for i := 0; i < len(leaves); i += bulkTx {
			if err := q.queue(ctx, leaves[i:min(len(leaves), i+bulkTx)]); err != nil {
				return 0, fmt.Errorf("queue items %d to %d into trillian: %w", first, first+n-1, err)
			}
		}
		queued += len(leaves)
		fmt.Fprintf(stdout, "items %d to %d: signed %d events in %v, queued into Trillian's tables in %v\n",
			first, first+n-1, len(leaves), signed.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	}
	return queued, nil
}

// queue writes leaves to the queue tables in one transaction.
func (q *bulkQueue) queue(ctx context.Context, leaves [][]byte) error {
	ts := max(time.Now().UnixNano(), q.last+1)
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := 0; i < len(leaves); i += bulkRows {
		part := leaves[i:min(len(leaves), i+bulkRows)]
		data := make([]any, 0, 4*len(part))
		unseq := make([]any, 0, 4*len(part))
		for j, leaf := range part {
			h := merkle.LeafHash(leaf)
			// trillianlog identifies a leaf by its Merkle leaf hash.
			at := ts + int64(i+j)
			data = append(data, q.tree, h[:], leaf, at)
			unseq = append(unseq, q.tree, h[:], h[:], at)
		}
		values := func(row string) string { return strings.TrimSuffix(strings.Repeat(row+",", len(part)), ",") }
		if _, err := tx.ExecContext(ctx, "INSERT INTO LeafData(TreeId,LeafIdentityHash,LeafValue,ExtraData,QueueTimestampNanos) VALUES"+values("(?,?,?,NULL,?)"), data...); err != nil {
			return fmt.Errorf("leaf data: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO Unsequenced(TreeId,Bucket,LeafIdentityHash,MerkleLeafHash,QueueTimestampNanos) VALUES"+values("(?,0,?,?,?)"), unseq...); err != nil {
			return fmt.Errorf("unsequenced: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	q.last = ts + int64(len(leaves)) - 1
	return nil
}

// waitApplied waits until both replicas' checkpoints have size want and
// the shared index is saved up to it.
func waitApplied(ctx context.Context, reps [2]*child, index *sqlstore.Store, want uint64, stdout io.Writer) error {
	t0 := time.Now()
	last := time.Now()
	for {
		var sizes [2]uint64
		for i, p := range reps {
			n, err := logSize(ctx, p.url)
			if err != nil {
				return fmt.Errorf("replica %c: %w", 'A'+i, err)
			}
			sizes[i] = n
		}
		at, err := index.Applied(ctx)
		if err != nil {
			return fmt.Errorf("the index's position: %w", err)
		}
		if sizes[0] == want && sizes[1] == want && at == want {
			fmt.Fprintf(stdout, "applied   both replicas at %d events, the index saved up to it, after %v\n", want, time.Since(t0).Round(time.Millisecond))
			return nil
		}
		for i, p := range reps {
			select {
			case <-p.done:
				return fmt.Errorf("replica %c exited: %v; its output ends:\n%s", 'A'+i, p.err, p.out)
			default:
			}
		}
		if time.Since(last) > 30*time.Second {
			last = time.Now()
			fmt.Fprintf(stdout, "waiting   for %d events: replicas' checkpoints %d and %d, index saved up to %d\n", want, sizes[0], sizes[1], at)
		}
		if err := client.Wait(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// postToReplicas signs the chains of the items numbered from to to-1 and
// POSTs the first half to replica A and the rest to replica B at once,
// and records each replica's write rate in row.
func postToReplicas(ctx context.Context, cfg Config, reps [2]*child, a actors, serials string, from, to int, now time.Time, row *trillianRow, stdout io.Writer) error {
	if to <= from {
		return nil
	}
	_, chains, err := presign(a, cfg.Hops, serials, from, to-from, now)
	if err != nil {
		return err
	}
	half := len(chains) / 2
	parts := [2][][]signedEvent{chains[:half], chains[half:]}
	var results [2]Result
	errs := make(chan error, 2)
	for i, p := range reps {
		go func() {
			c, err := newClient(p.url, cfg.Concurrency, cfg.Timeout)
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseIdleConnections()
			results[i] = poster(cfg.Batch)(ctx, c, parts[i], cfg.Concurrency)
			errs <- nil
		}()
	}
	err = errors.Join(<-errs, <-errs)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, res := range results {
		if res.Failed > 0 {
			return fmt.Errorf("replica %c: %d events failed (first: %v); its output ends:\n%s", 'A'+i, res.Failed, res.FirstErr, reps[i].out)
		}
		if len(res.Latencies) > 0 {
			row.replicas[i].writeRate = float64(len(res.Latencies)) / res.Elapsed.Seconds()
		}
		fmt.Fprintf(stdout, "POSTed    replica %c: %d items, %d events in %v (%.0f events/s)%s\n", 'A'+i, len(parts[i]), len(res.Latencies),
			res.Elapsed.Round(time.Millisecond), row.replicas[i].writeRate, turnedAwayNote(res.TurnedAway))
	}
	return nil
}

// thirdReplica starts a replica on the new directory dir holding copies
// of keysFrom's keys and nothing else, and returns the time from its
// start until it served a history page (page(base) names one) with 200.
// It stops the replica and removes dir after.
func thirdReplica(ctx context.Context, cfg Config, keysFrom, dir string, args []string, page func(base string) string, stdout io.Writer) (time.Duration, error) {
	if err := copyKeys(keysFrom, dir); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	logFile, err := createLog(dir)
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	p, healthz, err := startProvd(ctx, cfg.Provd, dir, logFile, args...)
	if err != nil {
		return 0, fmt.Errorf("third replica: %w", err)
	}
	defer p.stop()
	hc := &http.Client{Timeout: cfg.Timeout}
	defer hc.CloseIdleConnections()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, page(p.url), nil)
		if err != nil {
			return 0, err
		}
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				took := time.Since(t0)
				fmt.Fprintf(stdout, "replica   a third, from nothing but the keys: /healthz 200 after %v, its first history page 200 after %v\n",
					healthz.Round(time.Millisecond), took.Round(time.Millisecond))
				return took, nil
			}
		}
		if time.Since(t0) > startWithin {
			return 0, fmt.Errorf("third replica: no history page within %v (last: %v)", startWithin, err)
		}
		if err := client.Wait(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// tableSizes reads, from information_schema, the rows and bytes of the
// tables of the database dsn names (after ANALYZE TABLE, which brings
// InnoDB's row estimates up to date), prints them and returns their
// sums.
func tableSizes(ctx context.Context, dsn string, stdout io.Writer) (dbSize, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return dbSize{}, err
	}
	defer db.Close()
	names, err := tableNames(ctx, db)
	if err != nil {
		return dbSize{}, err
	}
	for _, name := range names {
		rows, err := db.QueryContext(ctx, "ANALYZE TABLE `"+name+"`")
		if err != nil {
			return dbSize{}, fmt.Errorf("analyze %s: %w", name, err)
		}
		rows.Close()
	}
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0), COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0)
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME`)
	if err != nil {
		return dbSize{}, fmt.Errorf("information_schema: %w", err)
	}
	defer rows.Close()
	var sum dbSize
	var parts []string
	for rows.Next() {
		var name string
		var s dbSize
		if err := rows.Scan(&name, &s.rows, &s.bytes); err != nil {
			return dbSize{}, err
		}
		sum.rows += s.rows
		sum.bytes += s.bytes
		parts = append(parts, fmt.Sprintf("%s %d rows %.1f MB", name, s.rows, mb(s.bytes)))
	}
	if err := rows.Err(); err != nil {
		return dbSize{}, err
	}
	fmt.Fprintf(stdout, "database  %s: %s\n", dbName(dsn), strings.Join(parts, ", "))
	return sum, nil
}

// tableNames lists the tables of db's database.
func tableNames(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// dbName is the database dsn names.
func dbName(dsn string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "?"
	}
	return c.DBName
}

// createLog creates the file that keeps the whole output of the provd on
// the data directory dir: dir and ".log".
func createLog(dir string) (*os.File, error) {
	f, err := os.Create(dir + ".log")
	if err != nil {
		return nil, fmt.Errorf("provd's log: %w", err)
	}
	return f, nil
}

// copyKeys makes the data directory to with copies of from's origin and
// keys, as an operator does for a new replica.
func copyKeys(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"origin", "log.key", "operator.key"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
