package provenance

import "fmt"

// claimRecords returns the used claims, for a Snapshot.
func (s *State) claimRecords() []ClaimRecord {
	out := make([]ClaimRecord, 0, len(s.claims))
	for c, id := range s.claims {
		out = append(out, ClaimRecord{Claim: c, Item: id})
	}
	return out
}

// restore loads a saved index into an empty State.
func (s *State) restore(snap Snapshot) error {
	if s.next != 0 || len(s.actors) != 0 || len(s.items) != 0 {
		return fmt.Errorf("restore into a state that is not empty")
	}
	for i := range snap.Actors {
		a := snap.Actors[i]
		s.actors[a.ID] = &a
	}
	for i := range snap.Items {
		it := snap.Items[i].State
		k := it.ID.key()
		if k == badItemKey {
			return fmt.Errorf("saved index holds a malformed item id %q", it.ID)
		}
		s.items[k] = &it
	}
	for _, c := range snap.Claims {
		s.claims[c.Claim] = c.Item
	}
	s.next = snap.Applied
	return nil
}
