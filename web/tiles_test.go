package web_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/monitor"
	"github.com/provtrail/provtrail/provenance"
)

// TestTilesServeMonitors follows the served log with merkle/monitor, whose
// proofs come from x/mod's tlog reading our tiles over HTTP, while the log
// grows past tile boundaries; bad tile paths are 400 and tiles past the
// tree 404.
func TestTilesServeMonitors(t *testing.T) {
	e := newEnv(t, true)
	policy, err := merkle.ParsePolicy([]byte("log " + e.node.Service.Trust().LogKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := monitor.Config{URL: e.srv.URL, Policy: policy, StatePath: filepath.Join(t.TempDir(), "monitor.json"), Client: e.srv.Client()}
	grow := func(n int) {
		t.Helper()
		var leaves [][]byte
		for i := range n {
			leaves = append(leaves, fmt.Appendf(nil, "filler %d %d", e.checkpointSize(), i))
		}
		if _, err := e.node.Log.Append(t.Context(), leaves); err != nil {
			t.Fatal(err)
		}
	}
	e.enroll("acme", provenance.RoleManufacturer, "Acme")
	for _, n := range []int{0, 254, 1, 1, 300, 65000} {
		grow(n)
		res, err := monitor.Check(t.Context(), cfg)
		if err != nil {
			t.Fatalf("after growing by %d: %v", n, err)
		}
		if res.New.Size != e.checkpointSize() {
			t.Fatalf("monitor saw size %d, log has %d", res.New.Size, e.checkpointSize())
		}
	}
	for path, want := range map[string]int{
		"/tile/0/000":                http.StatusOK,
		"/tile/entries/000.p/3":      http.StatusOK,
		"/tile/1/000":                http.StatusOK,
		"/tile/0/x999/999":           http.StatusNotFound,
		"/tile/0/1234":               http.StatusBadRequest,
		"/tile/0/000.p/0":            http.StatusBadRequest,
		"/tile/../checkpoint":        http.StatusBadRequest,
		"/tile/entries/000.p/999":    http.StatusBadRequest,
		"/tile/entries/x999/000":     http.StatusNotFound,
		"/tile/0/000/extra":          http.StatusBadRequest,
		"/tile/0/000.p/1?x=<b>y</b>": http.StatusOK,
	} {
		resp, body := e.get(path)
		if resp.StatusCode != want {
			t.Errorf("%s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
		if want == http.StatusOK && !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
		}
	}
}
