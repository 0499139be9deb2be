// Package trilliantest runs MariaDB and a Trillian log server and signer
// on loopback for tests: the tests of merkle/trillianlog and of provd's
// replicas share this one copy.
//
// A [Cluster] lives in a temporary directory, on free loopback ports, with
// a database "test" loaded with Trillian's MySQL schema from the module
// cache (the version go.mod pins). Tests make a fresh tree each with
// [Cluster.NewTree], and a fresh database for other uses (provd's shared
// index) with [Cluster.NewDatabase]. A [Harness] with DatabaseOnly set
// starts MariaDB alone. Without MariaDB or the Trillian binaries, tests
// skip and say what to install ([InstallHint]); with CI set they fail
// instead.
package trilliantest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SequencerInterval is the signer's pass interval: the latency floor of
// an append.
const SequencerInterval = 50 * time.Millisecond

// BatchSize is the most leaves the signer integrates in one pass.
const BatchSize = 5000

// Options tune the cluster [StartWith] starts; the zero value is what
// tests run with.
type Options struct {
	// SequencerInterval is the signer's pass interval; 0 means
	// [SequencerInterval].
	SequencerInterval time.Duration
	// BatchSize is the most leaves the signer integrates in one pass; 0
	// means [BatchSize].
	BatchSize int
	// BufferPool is MariaDB's InnoDB buffer pool size, as its
	// --innodb-buffer-pool-size takes it; "" means 256M.
	BufferPool string
}

// InstallHint says how to install what the tests need.
func InstallHint() string {
	version := "<the version in go.mod>"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/google/trillian" {
				version = m.Version
			}
		}
	}
	return "run .ci/install-trillian (or: apt-get install mariadb-server; go install -tags=mysql,etcd " +
		"github.com/google/trillian/cmd/{trillian_log_server,trillian_log_signer,createtree}@" + version + ")"
}

// A Cluster is MariaDB plus a Trillian log server and signer.
type Cluster struct {
	// Dir holds the database, the sockets and each program's log.
	Dir string
	// MySQLURI is the database Trillian uses, for --mysql_uri.
	MySQLURI string
	// RPCAddr is trillian_log_server's gRPC address (log and admin API);
	// "" for a cluster of MariaDB alone.
	RPCAddr string
	// Admin and Client talk to trillian_log_server over one connection;
	// nil for a cluster of MariaDB alone.
	Admin  trillian.TrillianAdminClient
	Client trillian.TrillianLogClient

	conn   *grpc.ClientConn
	procs  []*proc
	client string // the mariadb client
	sock   string // MariaDB's Unix socket, where root logs in
	dbAddr string // MariaDB's TCP address, host:port
	dbs    atomic.Int64
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// A Harness starts one Cluster for a test binary, on first use, and
// stops it when told. A test package declares one and stops it from
// TestMain:
//
//	var harness trilliantest.Harness
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		harness.Stop()
//		os.Exit(code)
//	}
type Harness struct {
	// DatabaseOnly starts MariaDB without Trillian's servers, for tests
	// that need only a database ([Cluster.NewDatabase]). Set it before
	// the first call of Cluster.
	DatabaseOnly bool

	once sync.Once
	c    *Cluster
	skip string // why the tests cannot run
	err  error
}

// Cluster returns the harness's cluster, starting it on first use. When
// MariaDB or the Trillian binaries are missing it skips the test, saying
// what to install, or fails it if the environment variable CI is set.
func (h *Harness) Cluster(tb testing.TB) *Cluster {
	tb.Helper()
	h.once.Do(func() {
		start := time.Now()
		h.c, h.skip, h.err = startCluster(!h.DatabaseOnly, Options{})
		if h.err == nil && h.skip == "" {
			what := "MariaDB and Trillian"
			if h.DatabaseOnly {
				what = "MariaDB"
			}
			tb.Logf("%s started in %v", what, time.Since(start).Round(time.Millisecond))
		}
	})
	switch {
	case h.skip != "" && os.Getenv("CI") != "":
		tb.Fatalf("%s; CI is set, so this fails instead of skipping: %s", h.skip, InstallHint())
	case h.skip != "":
		tb.Skipf("%s: %s", h.skip, InstallHint())
	case h.err != nil:
		tb.Fatalf("start MariaDB and Trillian: %v", h.err)
	}
	return h.c
}

// Stop stops the cluster, if it was started.
func (h *Harness) Stop() {
	if h.c != nil {
		h.c.Stop()
	}
}

// findBin looks for a program in PATH, GOBIN, GOPATH/bin and /usr/sbin.
func findBin(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	var dirs []string
	if gobin := goEnv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath := goEnv("GOPATH"); gopath != "" {
		for _, d := range filepath.SplitList(gopath) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	dirs = append(dirs, "/usr/sbin", "/usr/local/sbin", "/usr/bin")
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func goEnv(key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Start starts MariaDB, trillian_log_server and trillian_log_signer. It
// returns a reason to skip, and no error, when a program is missing. Stop
// the Cluster when done.
func Start() (c *Cluster, skip string, err error) {
	return startCluster(true, Options{})
}

// StartWith is Start with the signer and MariaDB tuned by o.
func StartWith(o Options) (c *Cluster, skip string, err error) {
	return startCluster(true, o)
}

// startCluster starts MariaDB, and Trillian's servers if withTrillian.
func startCluster(withTrillian bool, o Options) (c *Cluster, skip string, err error) {
	bins, skip := findBins(withTrillian)
	if skip != "" {
		return nil, skip, nil
	}
	if o.SequencerInterval == 0 {
		o.SequencerInterval = SequencerInterval
	}
	if o.BatchSize == 0 {
		o.BatchSize = BatchSize
	}
	if o.BufferPool == "" {
		o.BufferPool = "256M"
	}
	var schema string
	if withTrillian {
		if schema, err = trillianSchema(); err != nil {
			return nil, "", err
		}
	}

	// Short: a Unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "trl-")
	if err != nil {
		return nil, "", err
	}
	c = &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	if err := c.startMariaDB(bins, schema, o.BufferPool); err != nil {
		return c, "", err
	}
	if !withTrillian {
		return c, "", nil
	}
	if err := c.startTrillian(bins, o); err != nil {
		return c, "", err
	}
	return c, "", nil
}

// Missing says which of the programs Start needs are not installed, or
// returns "" if none is missing: a test that runs a program which starts
// a cluster itself skips on it.
func Missing() string {
	_, skip := findBins(true)
	return skip
}

// findBins finds MariaDB's programs, and Trillian's if withTrillian. It
// returns their paths by name, or says which are missing.
func findBins(withTrillian bool) (bins map[string]string, missing string) {
	bins = map[string]string{}
	var not []string
	names := []string{"mariadbd", "mariadb-install-db", "mariadb"}
	if withTrillian {
		names = append(names, "trillian_log_server", "trillian_log_signer")
	}
	for _, name := range names {
		p, ok := findBin(name)
		if !ok {
			not = append(not, name)
		}
		bins[name] = p
	}
	if len(not) > 0 {
		return nil, fmt.Sprintf("%s not found", strings.Join(not, ", "))
	}
	return bins, ""
}

// trillianSchema returns the path of Trillian's MySQL schema in the module
// cache, for the version go.mod pins.
func trillianSchema() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/trillian").Output()
	if err != nil {
		return "", fmt.Errorf("find the trillian module: go list: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "storage", "mysql", "schema", "storage.sql")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("trillian schema: %w", err)
	}
	return p, nil
}

// startMariaDB starts MariaDB with a database "test" for Trillian, loaded
// with schema unless it is "", and a buffer pool of bufferPool.
func (c *Cluster) startMariaDB(bins map[string]string, schema, bufferPool string) error {
	data := filepath.Join(c.Dir, "db")
	sock := filepath.Join(c.Dir, "sock")
	addr, err := freePort()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	var user []string
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	install := exec.Command(bins["mariadb-install-db"], append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, user...)...)
	if out, err := install.CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + sock,
		"--port=" + port, "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--log-error=" + filepath.Join(c.Dir, "mariadb.err"), "--pid-file=" + filepath.Join(c.Dir, "mariadb.pid"),
		"--innodb-buffer-pool-size=" + bufferPool, "--max-connections=500"}, user...)
	if err := c.spawn("mariadbd", bins["mariadbd"], args...); err != nil {
		return err
	}
	c.client, c.sock, c.dbAddr = bins["mariadb"], sock, net.JoinHostPort("127.0.0.1", port)
	sql := c.sql
	if err := c.WaitFor(30*time.Second, "MariaDB", func() error { return sql("", "SELECT 1") }); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(filepath.Join(c.Dir, "mariadb.err")))
	}
	if err := sql("", `CREATE DATABASE test;
		CREATE USER 'test'@'127.0.0.1' IDENTIFIED BY 'test';
		GRANT ALL ON test.* TO 'test'@'127.0.0.1';`); err != nil {
		return err
	}
	c.MySQLURI = "test:test@tcp(" + c.dbAddr + ")/test"
	if schema == "" {
		return nil
	}
	b, err := os.ReadFile(schema)
	if err != nil {
		return err
	}
	if err := sql("test", string(b)); err != nil {
		return fmt.Errorf("load %s: %w", schema, err)
	}
	return nil
}

// sql runs stmts in database db ("" for none) as MariaDB's root, over
// the Unix socket.
func (c *Cluster) sql(db, stmts string) error {
	args := []string{"--no-defaults", "--socket=" + c.sock, "--user=root"}
	if db != "" {
		args = append(args, db)
	}
	cmd := exec.Command(c.client, args...)
	cmd.Stdin = strings.NewReader(stmts)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// NewDatabase creates an empty database and a user who may use it alone,
// with the privileges provenance/sqlstore documents (SELECT, INSERT,
// UPDATE, DELETE, CREATE, DROP), and returns the user's DSN in
// go-sql-driver/mysql's form: user:password@tcp(127.0.0.1:port)/name. Both
// are dropped when the test ends.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	dsn, drop, err := c.CreateDatabase()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Log(err)
		}
	})
	return dsn
}

// CreateDatabase is NewDatabase outside a test: it returns the DSN and a
// function that drops the database and its user.
func (c *Cluster) CreateDatabase() (dsn string, drop func() error, err error) {
	name := fmt.Sprintf("db%d", c.dbs.Add(1))
	err = c.sql("", fmt.Sprintf(`CREATE DATABASE %[1]s CHARACTER SET utf8mb4;
		CREATE USER '%[1]s'@'127.0.0.1' IDENTIFIED BY '%[1]s-pw';
		GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON %[1]s.* TO '%[1]s'@'127.0.0.1';`, name))
	if err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func() error {
		if err := c.sql("", fmt.Sprintf("DROP DATABASE %[1]s; DROP USER '%[1]s'@'127.0.0.1';", name)); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return fmt.Sprintf("%[1]s:%[1]s-pw@tcp(%[2]s)/%[1]s", name, c.dbAddr), drop, nil
}

func (c *Cluster) startTrillian(bins map[string]string, o Options) error {
	rpc, err := freePort()
	if err != nil {
		return err
	}
	httpAddr, err := freePort()
	if err != nil {
		return err
	}
	common := []string{"--storage_system=mysql", "--mysql_uri=" + c.MySQLURI, "--quota_system=noop", "--logtostderr"}
	// The log server opens a MariaDB connection for every call in flight
	// unless bounded: replicas appending many events at once would take
	// it past MariaDB's --max-connections (Error 1040, Too many
	// connections). Past the bound, calls wait for a connection.
	if err := c.spawn("trillian_log_server", bins["trillian_log_server"], append(common,
		"--rpc_endpoint="+rpc, "--http_endpoint="+httpAddr, "--mysql_max_conns=200")...); err != nil {
		return err
	}
	sRPC, err := freePort()
	if err != nil {
		return err
	}
	sHTTP, err := freePort()
	if err != nil {
		return err
	}
	if err := c.spawn("trillian_log_signer", bins["trillian_log_signer"], append(common,
		"--rpc_endpoint="+sRPC, "--http_endpoint="+sHTTP, "--force_master", "--mysql_max_conns=20",
		"--sequencer_interval="+o.SequencerInterval.String(), "--batch_size="+strconv.Itoa(o.BatchSize), "--num_sequencers=4")...); err != nil {
		return err
	}
	c.RPCAddr = rpc
	c.conn, err = grpc.NewClient(rpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.Admin = trillian.NewTrillianAdminClient(c.conn)
	c.Client = trillian.NewTrillianLogClient(c.conn)
	return c.WaitFor(30*time.Second, "trillian_log_server", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Admin.ListTrees(ctx, &trillian.ListTreesRequest{})
		return err
	})
}

// spawn starts a program in the background, its output in a log file.
func (c *Cluster) spawn(name, bin string, args ...string) error {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

// Stop kills the processes in reverse order of start and removes the
// directory.
func (c *Cluster) Stop() {
	if c.conn != nil {
		c.conn.Close()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.cmd.Process.Kill()
		<-p.done
	}
	os.RemoveAll(c.Dir)
}

// dead reports a process that exited, with the end of its log.
func (c *Cluster) dead() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, tail(p.log))
		default:
		}
	}
	return nil
}

// WaitFor calls ready until it succeeds, a process of the cluster exits,
// or limit passes.
func (c *Cluster) WaitFor(limit time.Duration, what string, ready func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if d := c.dead(); d != nil {
			return fmt.Errorf("waiting for %s: %w", what, d)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w", what, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// NewTree creates and initializes a LOG tree, as createtree does, and
// waits until it has a root.
func (c *Cluster) NewTree(tb testing.TB) int64 {
	tb.Helper()
	return c.NewTreeOfType(tb, trillian.TreeType_LOG)
}

// NewTreeOfType is NewTree for a tree of another type.
func (c *Cluster) NewTreeOfType(tb testing.TB, typ trillian.TreeType) int64 {
	tb.Helper()
	id, err := c.CreateTree(tb.Context(), typ)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// CreateTree is NewTreeOfType outside a test.
func (c *Cluster) CreateTree(ctx context.Context, typ trillian.TreeType) (int64, error) {
	tree, err := c.Admin.CreateTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        typ,
		DisplayName:     "provtrail test",
		MaxRootDuration: durationpb.New(0),
	}})
	if err != nil {
		return 0, fmt.Errorf("create tree: %w", err)
	}
	id := tree.GetTreeId()
	err = c.WaitFor(10*time.Second, "InitLog", func() error {
		_, err := c.Client.InitLog(ctx, &trillian.InitLogRequest{LogId: id})
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return err
	})
	if err == nil {
		err = c.WaitFor(10*time.Second, "the new tree's first root", func() error {
			_, err := c.Client.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: id})
			return err
		})
	}
	if err != nil {
		return 0, fmt.Errorf("initialize tree %d: %w", id, err)
	}
	return id, nil
}

// TreeFor returns the tree whose ID is kept in dir/tree-id, creating it
// on first use, so that reopening a test's directory reopens its tree.
func (c *Cluster) TreeFor(tb testing.TB, dir string) int64 {
	tb.Helper()
	path := filepath.Join(dir, "tree-id")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		id := c.NewTree(tb)
		if err := os.WriteFile(path, []byte(strconv.FormatInt(id, 10)), 0o600); err != nil {
			tb.Fatal(err)
		}
		return id
	}
	if err != nil {
		tb.Fatal(err)
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return id
}
