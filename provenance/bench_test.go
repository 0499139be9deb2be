package provenance

import (
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// BenchmarkEd25519Verify measures signed-note verification of event
// leaves on all cores: the bound on how fast the Service can check events
// and a verifier can check bundles.
func BenchmarkEd25519Verify(b *testing.B) {
	f := newFixture(b)
	leaf := f.enrollLeaf("acme", RoleManufacturer)
	v, err := note.NewVerifier(f.op.vkey)
	if err != nil {
		b.Fatal(err)
	}
	vs := note.VerifierList(v)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := note.Open(leaf, vs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

// BenchmarkVerifyBundle verifies the bundle of an item with 10 events
// (17 entries with the enrollments and revocations they rely on) in a log
// of 1<<20 entries, so each inclusion proof has 20 hashes.
func BenchmarkVerifyBundle(b *testing.B) {
	f := bundleWorld(b)
	const size = 1 << 20
	l := newTestLog(b, f, size, func(i uint64) uint64 { return i*(size/32) + 7 })
	bundle := l.bundle(b, itemX)
	h, err := VerifyBundle(bundle, l.trust)
	if err != nil {
		b.Fatal(err)
	}
	if len(h.Events) != 10 {
		b.Fatalf("%d events", len(h.Events))
	}
	b.SetBytes(int64(len(bundle)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := VerifyBundle(bundle, l.trust); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply measures replay: one accepted handoff or receive per op.
func BenchmarkApply(b *testing.B) {
	f := newFixture(b)
	f.ok(f.enrollLeaf("acme", RoleManufacturer))
	f.ok(f.enrollLeaf("swift", RoleCourier))
	f.ok(f.registerLeaf("acme", itemX))
	// Pre-sign a long alternating chain, then time applying it.
	start := uint64(len(f.leaves))
	var leaves [][]byte
	from, to := "acme", "swift"
	for range 2000 {
		leaves = append(leaves, f.ok(f.handoffLeaf(from, itemX, Handoff{To: to})).leaf(f))
		leaves = append(leaves, f.ok(f.receiveLeaf(to, itemX)).leaf(f))
		from, to = to, from
	}
	st := stateAt(b, f, start)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(leaves) {
			b.StopTimer()
			st, i = stateAt(b, f, start), 0
			b.StartTimer()
		}
		if _, err := st.Apply(start+uint64(i), leaves[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// leaf returns the leaf an Applied came from, from the fixture's log.
func (a Applied) leaf(f *fixture) []byte { return f.leaves[a.Index] }

// stateAt replays the fixture's first n leaves into a fresh State.
func stateAt(tb testing.TB, f *fixture, n uint64) *State {
	st, err := NewState(f.op.vkey)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := st.Apply(i, f.leaves[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}
