package trillianlog

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
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The tests run against a real MariaDB and a real Trillian log server and
// signer, started once per test binary (the first test that needs them
// starts them; TestMain stops them) on loopback ports, in a temporary
// directory. Each test gets a fresh tree.

// sequencerInterval is the signer's pass interval in the tests: the
// latency floor of an append.
const sequencerInterval = 50 * time.Millisecond

// installHint says how to install what the tests need.
func installHint() string {
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

// A cluster is MariaDB plus a Trillian log server and signer.
type cluster struct {
	dir      string
	mysqlURI string
	rpcAddr  string
	conn     *grpc.ClientConn
	admin    trillian.TrillianAdminClient
	client   trillian.TrillianLogClient
	procs    []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

var shared struct {
	once sync.Once
	c    *cluster
	skip string // why the tests cannot run
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.stop()
	}
	os.Exit(code)
}

// testCluster returns the shared cluster, starting it on first use. When
// MariaDB or the Trillian binaries are missing it skips the test, or fails
// it if the environment variable CI is set.
func testCluster(tb testing.TB) *cluster {
	tb.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.c, shared.skip, shared.err = startCluster()
		if shared.err == nil && shared.skip == "" {
			tb.Logf("MariaDB and Trillian started in %v", time.Since(start).Round(time.Millisecond))
		}
	})
	switch {
	case shared.skip != "" && os.Getenv("CI") != "":
		tb.Fatalf("%s; CI is set, so this fails instead of skipping: %s", shared.skip, installHint())
	case shared.skip != "":
		tb.Skipf("%s: %s", shared.skip, installHint())
	case shared.err != nil:
		tb.Fatalf("start MariaDB and Trillian: %v", shared.err)
	}
	return shared.c
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

func startCluster() (c *cluster, skip string, err error) {
	bins := map[string]string{}
	var missing []string
	for _, name := range []string{"mariadbd", "mariadb-install-db", "mariadb", "trillian_log_server", "trillian_log_signer"} {
		p, ok := findBin(name)
		if !ok {
			missing = append(missing, name)
		}
		bins[name] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Sprintf("%s not found", strings.Join(missing, ", ")), nil
	}
	schema, err := trillianSchema()
	if err != nil {
		return nil, "", err
	}

	// Short: a Unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "trl-")
	if err != nil {
		return nil, "", err
	}
	c = &cluster{dir: dir}
	defer func() {
		if err != nil {
			c.stop()
			c = nil
		}
	}()
	if err := c.startMariaDB(bins, schema); err != nil {
		return c, "", err
	}
	if err := c.startTrillian(bins); err != nil {
		return c, "", err
	}
	return c, "", nil
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

func (c *cluster) startMariaDB(bins map[string]string, schema string) error {
	data := filepath.Join(c.dir, "db")
	sock := filepath.Join(c.dir, "sock")
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
		"--log-error=" + filepath.Join(c.dir, "mariadb.err"), "--pid-file=" + filepath.Join(c.dir, "mariadb.pid"),
		"--innodb-buffer-pool-size=256M", "--max-connections=500"}, user...)
	if err := c.spawn("mariadbd", bins["mariadbd"], args...); err != nil {
		return err
	}
	sql := func(db, stmts string) error {
		args := []string{"--no-defaults", "--socket=" + sock, "--user=root"}
		if db != "" {
			args = append(args, db)
		}
		cmd := exec.Command(bins["mariadb"], args...)
		cmd.Stdin = strings.NewReader(stmts)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("mariadb: %w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := c.waitFor(30*time.Second, "MariaDB", func() error { return sql("", "SELECT 1") }); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(filepath.Join(c.dir, "mariadb.err")))
	}
	if err := sql("", `CREATE DATABASE test;
		CREATE USER 'test'@'127.0.0.1' IDENTIFIED BY 'test';
		GRANT ALL ON test.* TO 'test'@'127.0.0.1';`); err != nil {
		return err
	}
	b, err := os.ReadFile(schema)
	if err != nil {
		return err
	}
	if err := sql("test", string(b)); err != nil {
		return fmt.Errorf("load %s: %w", schema, err)
	}
	c.mysqlURI = "test:test@tcp(127.0.0.1:" + port + ")/test"
	return nil
}

func (c *cluster) startTrillian(bins map[string]string) error {
	rpc, err := freePort()
	if err != nil {
		return err
	}
	httpAddr, err := freePort()
	if err != nil {
		return err
	}
	common := []string{"--storage_system=mysql", "--mysql_uri=" + c.mysqlURI, "--quota_system=noop", "--logtostderr"}
	if err := c.spawn("trillian_log_server", bins["trillian_log_server"], append(common,
		"--rpc_endpoint="+rpc, "--http_endpoint="+httpAddr)...); err != nil {
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
		"--rpc_endpoint="+sRPC, "--http_endpoint="+sHTTP, "--force_master",
		"--sequencer_interval="+sequencerInterval.String(), "--batch_size=5000", "--num_sequencers=4")...); err != nil {
		return err
	}
	c.rpcAddr = rpc
	c.conn, err = grpc.NewClient(rpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.admin = trillian.NewTrillianAdminClient(c.conn)
	c.client = trillian.NewTrillianLogClient(c.conn)
	return c.waitFor(30*time.Second, "trillian_log_server", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.admin.ListTrees(ctx, &trillian.ListTreesRequest{})
		return err
	})
}

// spawn starts a program in the background, its output in a log file.
func (c *cluster) spawn(name, bin string, args ...string) error {
	logPath := filepath.Join(c.dir, name+".log")
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

// stop kills the processes in reverse order of start and removes the
// directory.
func (c *cluster) stop() {
	if c.conn != nil {
		c.conn.Close()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.cmd.Process.Kill()
		<-p.done
	}
	os.RemoveAll(c.dir)
}

// dead reports a process that exited, with the end of its log.
func (c *cluster) dead() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, tail(p.log))
		default:
		}
	}
	return nil
}

// waitFor calls ready until it succeeds, a process of the cluster exits,
// or limit passes.
func (c *cluster) waitFor(limit time.Duration, what string, ready func() error) error {
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

// newTree creates and initializes a LOG tree, as createtree does, and
// waits until it has a root.
func (c *cluster) newTree(tb testing.TB) int64 {
	tb.Helper()
	return c.newTreeOfType(tb, trillian.TreeType_LOG)
}

func (c *cluster) newTreeOfType(tb testing.TB, typ trillian.TreeType) int64 {
	tb.Helper()
	ctx := tb.Context()
	tree, err := c.admin.CreateTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        typ,
		DisplayName:     "provtrail test",
		MaxRootDuration: durationpb.New(0),
	}})
	if err != nil {
		tb.Fatalf("create tree: %v", err)
	}
	id := tree.GetTreeId()
	err = c.waitFor(10*time.Second, "InitLog", func() error {
		_, err := c.client.InitLog(ctx, &trillian.InitLogRequest{LogId: id})
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return err
	})
	if err == nil {
		err = c.waitFor(10*time.Second, "the new tree's first root", func() error {
			_, err := c.client.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: id})
			return err
		})
	}
	if err != nil {
		tb.Fatalf("initialize tree %d: %v", id, err)
	}
	return id
}

// treeIDFile keeps a test log's tree ID next to its key, so that reopening
// the directory reopens the tree.
func (c *cluster) treeFor(tb testing.TB, dir string) int64 {
	tb.Helper()
	path := filepath.Join(dir, "tree-id")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		id := c.newTree(tb)
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
