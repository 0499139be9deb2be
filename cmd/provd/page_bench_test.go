package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
)

// pageBenchItems is how many items BenchmarkReplicaPage registers. Each
// page it loads is of an item it did not load before, as long as it loads
// no more pages than that: a page seen before is answered from the
// Service's view cache.
const pageBenchItems = 500

// BenchmarkReplicaPage loads the history pages of items on a replica on
// Trillian with its index in MariaDB (--index mysql://...), in provd's
// process, so that -cpuprofile profiles the replica. Each item is a
// register, a handoff and a receive, appended all registers first, then
// all handoffs, then all receives, so that an item's events lie far apart
// in the log, as they do when days pass between them (provload -scale
// appends each item's events one after another). It waits for the index
// to be saved,
// so pages read their items from MariaDB, then loads one page of a new
// item at a time and reports the median and the 90th percentile:
//
//	go test -run=NONE -bench=ReplicaPage -benchtime=400x ./cmd/provd
func BenchmarkReplicaPage(b *testing.B) {
	c := trillianHarness.Cluster(b)
	dir := filepath.Join(b.TempDir(), "replica")
	s := startProvd(b, dir, append(replicaArgs(c, c.NewTree(b)), "--index", "mysql://"+c.NewDatabase(b))...)
	k := newKeys(b, dir)
	s.submit(k.enroll("maker", provenance.RoleManufacturer))
	s.submit(k.enroll("courier", provenance.RoleCourier))

	ids := make([]provenance.ItemID, pageBenchItems)
	prev := make([]merkle.Hash, pageBenchItems)
	for _, step := range []func(i int) provenance.Event{
		func(i int) provenance.Event {
			ids[i] = mustItem(b, fmt.Sprintf("PAGE-%d", i))
			return provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: ids[i],
				Register: &provenance.Register{Product: "Tea", Lot: "L1"}}
		},
		func(i int) provenance.Event {
			return provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: ids[i], Prev: prev[i],
				Handoff: &provenance.Handoff{To: "courier"}}
		},
		func(i int) provenance.Event {
			return provenance.Event{Kind: provenance.KindReceive, Actor: "courier", Item: ids[i], Prev: prev[i],
				Receive: &provenance.Receive{By: "courier"}}
		},
	} {
		leaves := make([][]byte, pageBenchItems)
		for i := range leaves {
			leaves[i] = k.sign(step(i))
			prev[i] = merkle.LeafHash(leaves[i])
		}
		postBatches(b, s, leaves, 32, 4)
	}
	// The replica saves its index every second; after that it reads the
	// items from MariaDB.
	time.Sleep(3 * time.Second)

	client := &http.Client{}
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		path := ids[i%len(ids)].DigitalLink("")
		start := time.Now()
		resp, err := client.Get(s.url + path)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		took = append(took, time.Since(start))
	}
	if len(took) > len(ids) {
		b.Logf("%d pages of %d items: pages after the first %d were answered from the view cache", len(took), len(ids), len(ids))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "p90-ms")
}

// postBatches POSTs leaves to s in batches of size from workers at once,
// and fails unless every one is accepted.
func postBatches(tb testing.TB, s *server, leaves [][]byte, size, workers int) {
	tb.Helper()
	batches := make(chan [][]byte)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for batch := range batches {
				notes := make([]string, len(batch))
				for i, l := range batch {
					notes[i] = string(l)
				}
				body, err := json.Marshal(api.BatchRequest{Events: notes})
				if err != nil {
					tb.Error(err)
					continue
				}
				resp, err := http.Post(s.url+"/api/v1/events/batch", "application/json", bytes.NewReader(body))
				if err != nil {
					tb.Error(err)
					continue
				}
				var r api.BatchResponse
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || r.Accepted != len(batch) {
					tb.Errorf("batch of %d: %d, %d accepted, %v", len(batch), resp.StatusCode, r.Accepted, err)
				}
			}
		})
	}
	for len(leaves) > 0 {
		n := min(size, len(leaves))
		batches <- leaves[:n]
		leaves = leaves[n:]
	}
	close(batches)
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
}
