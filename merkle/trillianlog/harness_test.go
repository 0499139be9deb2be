package trillianlog

import (
	"os"
	"testing"

	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
)

// The tests run against a real MariaDB and a real Trillian log server and
// signer, started once per test binary by trilliantest (the first test
// that needs them starts them; TestMain stops them) on loopback ports, in
// a temporary directory. Each test gets a fresh tree.

// A cluster is MariaDB plus a Trillian log server and signer.
type cluster struct{ *trilliantest.Cluster }

var harness trilliantest.Harness

func TestMain(m *testing.M) {
	code := m.Run()
	harness.Stop()
	os.Exit(code)
}

// testCluster returns the shared cluster, starting it on first use. When
// MariaDB or the Trillian binaries are missing it skips the test, or fails
// it if the environment variable CI is set.
func testCluster(tb testing.TB) *cluster {
	tb.Helper()
	return &cluster{harness.Cluster(tb)}
}
