package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// BenchmarkHistoryPage renders the history page of an item with 10 events
// through the real handler, in parallel, and reports pages per second.
func BenchmarkHistoryPage(b *testing.B) {
	e := newEnv(b, true)
	id := mustItem(b, gtin, "BENCH1")
	scenario(e, id, "Bag") // 3 events
	e.enroll("courier2", provenance.RoleCourier, "Second Courier")
	for i := 0; i < 3; i++ { // 6 more
		from, to := "courier", "courier2"
		if i%2 == 1 {
			from, to = to, from
		}
		e.ok(e.handoffLeaf(from, id, provenance.Handoff{To: to}))
		e.ok(e.receiveLeaf(to, id, "Guangzhou"))
	}
	e.ok(e.handoffLeaf("courier2", id, provenance.Handoff{To: "courier"})) // the 10th
	path := id.DigitalLink("")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			e.server.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}
