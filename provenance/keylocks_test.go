package provenance

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestKeyLocks checks that events for one key are serialized, that keys
// never wait for each other (striped mutexes did, when two keys shared a
// stripe), and that a key's mutex is dropped once no one holds or waits
// for it.
func TestKeyLocks(t *testing.T) {
	var k keyLocks
	// One holder per key, many keys at once: none waits for another.
	const keys = 5000
	unlocks := make([]func(), keys)
	done := make(chan struct{})
	go func() {
		for i := range keys {
			unlocks[i] = k.lock(lockID{actor: fmt.Sprintf("actor %d", i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("locking %d different keys blocked", keys)
	}
	// A second locker of a held key waits until it is unlocked.
	got := make(chan struct{})
	go func() {
		unlock := k.lock(lockID{actor: "actor 7"})
		close(got)
		unlock()
	}()
	select {
	case <-got:
		t.Fatal("a held key was locked again")
	case <-time.After(20 * time.Millisecond):
	}
	unlocks[7]()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the key once it was unlocked")
	}
	for i, u := range unlocks {
		if i != 7 {
			u()
		}
	}
	// Counting under contention: the key's mutex guards n.
	var wg sync.WaitGroup
	n := 0
	for range 50 {
		wg.Go(func() {
			for range 100 {
				unlock := k.lock(lockID{item: itemX.key()})
				n++
				unlock()
			}
		})
	}
	wg.Wait()
	if n != 5000 {
		t.Errorf("n = %d after 5,000 increments under the key's lock", n)
	}
	k.mu.Lock()
	left := len(k.m)
	k.mu.Unlock()
	if left != 0 {
		t.Errorf("%d key mutexes kept after every holder unlocked", left)
	}
}
