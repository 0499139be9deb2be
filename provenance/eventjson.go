package provenance

// decodeEventCanonical decodes the JSON line of an event note if it is
// exactly what Sign writes (encoding/json, compact, fields in wireEvent's
// order, empty optional fields left out), every string of which is in the
// subset canonReader.str accepts. It reports false for anything else,
// never a wrong decoding: decodeEventText then decodes the line with
// encoding/json and re-encodes it to check the form, which also says what
// is wrong. FuzzDecodeEventCanonical checks the two agree.
func decodeEventCanonical(line []byte) (wireEvent, bool) {
	r := canonReader{data: line, ok: true}
	var w wireEvent
	r.lit(`{"kind":`)
	w.Kind = Kind(r.str())
	r.lit(`,"actor":`)
	w.Actor = r.str()
	r.lit(`,"time":`)
	w.Time = r.str()
	w.Place = r.optional(`,"place":`)
	w.Item = r.optional(`,"item":`)
	w.Prev = r.optional(`,"prev":`)
	if r.ok && r.has(`,"enroll":`) {
		r.lit(`,"enroll":{"id":`)
		a := &Actor{ID: r.str()}
		r.lit(`,"role":`)
		a.Role = Role(r.str())
		r.lit(`,"name":`)
		a.Name = r.str()
		r.lit(`,"key":`)
		a.Key = r.str()
		r.lit(`}`)
		w.Enroll = a
	}
	if r.ok && r.has(`,"revoke":`) {
		r.lit(`,"revoke":{"id":`)
		v := &Revoke{ID: r.str()}
		r.lit(`,"reason":`)
		v.Reason = r.str()
		r.lit(`}`)
		w.Revoke = v
	}
	if r.ok && r.has(`,"register":`) {
		r.lit(`,"register":{"product":`)
		g := &Register{Product: r.str()}
		g.Lot = r.optional(`,"lot":`)
		g.Description = r.optional(`,"description":`)
		r.lit(`}`)
		w.Register = g
	}
	if r.ok && r.has(`,"handoff":`) {
		r.lit(`,"handoff":{`)
		h := &Handoff{}
		h.To = r.optionalFirst(`"to":`, true)
		h.Claim = r.optionalFirst(`"claim":`, h.To == "")
		h.Salt = r.optionalFirst(`"salt":`, h.To == "" && h.Claim == "")
		r.lit(`}`)
		w.Handoff = h
	}
	if r.ok && r.has(`,"receive":`) {
		r.lit(`,"receive":{`)
		v := &Receive{}
		v.By = r.optionalFirst(`"by":`, true)
		v.ClaimCode = r.optionalFirst(`"claim_code":`, v.By == "")
		v.BuyerKey = r.optionalFirst(`"buyer_key":`, v.By == "" && v.ClaimCode == "")
		r.lit(`}`)
		w.Receive = v
	}
	if r.ok && r.has(`,"dispute":`) {
		r.lit(`,"dispute":{"reason":`)
		d := &Dispute{Reason: r.str()}
		if r.ok && r.has(`,"evidence":[`) {
			r.lit(`,"evidence":[`)
			d.Evidence = append(d.Evidence, r.str())
			for r.ok && r.has(`,`) {
				r.lit(`,`)
				d.Evidence = append(d.Evidence, r.str())
			}
			r.lit(`]`)
		}
		r.lit(`}`)
		w.Dispute = d
	}
	if r.ok && r.has(`,"ruling":`) {
		r.lit(`,"ruling":{"decision":`)
		w.Ruling = &Ruling{Decision: r.str()}
		r.lit(`}`)
	}
	r.lit(`}`)
	if !r.ok || r.off != len(r.data) {
		return wireEvent{}, false
	}
	return w, true
}

// optional reads `key "value"` if it is next, as encoding/json writes a
// string field with omitempty: never an empty value.
func (r *canonReader) optional(key string) string {
	if !r.ok || !r.has(key) {
		return ""
	}
	r.lit(key)
	s := r.str()
	if s == "" {
		r.ok = false // encoding/json leaves an empty one out
	}
	return s
}

// optionalFirst is optional for a field inside an object, preceded by a
// comma unless first (no field of the object came before it).
func (r *canonReader) optionalFirst(key string, first bool) string {
	if first {
		return r.optional(key)
	}
	return r.optional("," + key)
}
