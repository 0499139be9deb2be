package web_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// The abuse suite (docs/abuse.md lists the same rows): hostile inputs
// against the real handler over httptest. Every row expects its status and
// error code (a JSON error for the API, an HTML page for pages), never a
// 5xx, the log's size changed only by the rows that append, and the item's
// history page still served afterwards.

const abuseGTIN = "09506000134352"

// An abuseFix is the state the rows run against: a maker, a courier, an
// item registered by the maker and received by the courier, and an
// accepted leaf to replay.
type abuseFix struct {
	e        *env
	id       provenance.ItemID
	accepted []byte // the item's register leaf
	latest   []byte // the item's latest leaf (the courier's receive)
	// enrollMaker is the maker's enrollment.
	enrollMaker []byte
}

// signText signs a hand-written event note, bypassing provenance.Sign's
// checks.
func signText(t testing.TB, jsonLine string, signer note.Signer) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: provenance.EventHeader + "\n" + jsonLine + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawGet sends a request line as is, which net/http's client refuses to
// build.
func (f *abuseFix) rawGet(target string) (*http.Response, []byte) {
	f.e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.e.srv.URL, "http://"))
	if err != nil {
		f.e.t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		f.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// An abuseRow is one hostile input.
type abuseRow struct {
	name   string // what the input is (docs/abuse.md "input")
	route  string // the route it hits
	do     func(f *abuseFix) (*http.Response, []byte)
	status int
	// code is the JSON error code; "page" for an HTML page, "duplicate" for
	// a 200 duplicate receipt, "receipt" for a 201, "net/http" for an answer
	// of Go's server before the handler, "" to check the status only.
	code    string
	appends int // how many entries the row appends
	// results is, for code "batch" (a 200 batch answer), what became of
	// its events: "N code" by error code ("receipt", "duplicate" for 201
	// and 200), most frequent first, joined by ", ".
	results string
	skip    string // "BUG: ..." when a row shows a bug not yet fixed
}

func (f *abuseFix) do(method, path, ctype string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	f.e.t.Helper()
	req, err := http.NewRequest(method, f.e.srv.URL+path, body)
	if err != nil {
		f.e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		f.e.t.Fatalf("%s %.80s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (f *abuseFix) postNote(leaf []byte) (*http.Response, []byte) {
	return f.do(http.MethodPost, "/api/v1/events", "text/plain; charset=utf-8", bytes.NewReader(leaf))
}

// forge returns leaf with its signature changed: another base64 digit
// (flipping a bit could make it no base64 at all, a malformed note rather
// than a bad signature).
func forge(leaf []byte) []byte {
	leaf = bytes.Clone(leaf)
	i := bytes.LastIndex(leaf, []byte(" ")) + 10
	if leaf[i] == 'A' {
		leaf[i] = 'B'
	} else {
		leaf[i] = 'A'
	}
	return leaf
}

func (f *abuseFix) postBatch(body string) (*http.Response, []byte) {
	return f.do(http.MethodPost, "/api/v1/events/batch", "application/json", strings.NewReader(body))
}

// batchOf is the JSON body of a batch of n copies of leaf.
func batchOf(t testing.TB, leaf []byte, n int) string {
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = leaf
	}
	return string(batchBody(t, leaves...))
}

// batchSummary says what became of a batch's events, as abuseRow.results.
func batchSummary(br batchResponse) string {
	count := map[string]int{}
	for _, r := range br.Results {
		switch {
		case r.Status == http.StatusCreated:
			count["receipt"]++
		case r.Status == http.StatusOK:
			count["duplicate"]++
		case r.Error != nil:
			count[r.Error.Code]++
		default:
			count[fmt.Sprint(r.Status)]++
		}
	}
	codes := slices.Collect(maps.Keys(count))
	slices.SortFunc(codes, func(a, b string) int {
		if c := count[b] - count[a]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d %s", count[c], c))
	}
	return strings.Join(parts, ", ")
}

func postBody(ctype string, body string) func(f *abuseFix) (*http.Response, []byte) {
	return func(f *abuseFix) (*http.Response, []byte) {
		return f.do(http.MethodPost, "/api/v1/events", ctype, strings.NewReader(body))
	}
}

func postLeaf(leaf func(f *abuseFix) []byte) func(f *abuseFix) (*http.Response, []byte) {
	return func(f *abuseFix) (*http.Response, []byte) { return f.postNote(leaf(f)) }
}

func getPath(path string, hdr ...string) func(f *abuseFix) (*http.Response, []byte) {
	return func(f *abuseFix) (*http.Response, []byte) { return f.do(http.MethodGet, path, "", nil, hdr...) }
}

// slowReader yields n bytes of 'x', one at a time, every d.
type slowReader struct {
	n int
	d time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.d)
	r.n--
	p[0] = 'x'
	return 1, nil
}

// zeros streams n bytes with no Content-Length (chunked).
type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), z.n)
	for i := range p[:k] {
		p[i] = 'A'
	}
	z.n -= k
	return k, nil
}

// xssEvent signs ev by the actor by (or the operator).
func xssEvent(f *abuseFix, ev provenance.Event, by string) []byte {
	signer := f.e.keys[by]
	if by == provenance.OperatorID {
		signer = f.e.node.Operator
	}
	return f.e.sign(ev, signer)
}

const xss = `<script>alert(1)</script>`

var abuseTable = flag.Bool("abuse-table", false, "TestAbuseTable prints the abuse table")

func abuseRows() []abuseRow {
	item := "/01/" + abuseGTIN + "/21/ABUSE1"
	return []abuseRow{
		// Bodies.
		{name: `body "hello"`, route: "POST /api/v1/events", do: postBody("text/plain", "hello"), status: 400, code: "malformed_event"},
		{name: "empty body", route: "POST /api/v1/events", do: postBody("text/plain", ""), status: 400, code: "malformed_event"},
		{name: "invalid UTF-8 and NUL bytes", route: "POST /api/v1/events", do: postBody("text/plain", "provtrail-event/v1\n\xff\xfe\x00{}\n\n— maker AAAA\n"), status: 400, code: "malformed_event"},
		{name: "JSON event without a note", route: "POST /api/v1/events", do: postBody("text/plain", `{"kind":"register","actor":"maker"}`), status: 400, code: "malformed_event"},
		{name: "note with a bare JSON line and no signature", route: "POST /api/v1/events", do: postBody("text/plain", "provtrail-event/v1\n{\"kind\":\"register\"}\n"), status: 400, code: "malformed_event"},
		{name: "65 KiB body", route: "POST /api/v1/events", do: postBody("text/plain", strings.Repeat("A", 65<<10)), status: 413, code: "too_large"},
		{name: "10 MiB body streamed (chunked, no length)", route: "POST /api/v1/events", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.do(http.MethodPost, "/api/v1/events", "text/plain", &zeros{n: 10 << 20})
		}, status: 413, code: "too_large"},
		{name: "5,000 copies of an accepted note concatenated", route: "POST /api/v1/events", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postNote(bytes.Repeat(f.accepted, 5000))
		}, status: 413, code: "too_large"},
		{name: "100 copies of an accepted note concatenated (under 64 KiB)", route: "POST /api/v1/events", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postNote(bytes.Repeat(f.accepted, 100))
		}, status: 400, code: "malformed_event"},
		// Content types.
		{name: "Content-Type application/json", route: "POST /api/v1/events", do: postBody("application/json", `{}`), status: 415, code: "unsupported_media_type"},
		{name: "form post", route: "POST /api/v1/events", do: postBody("application/x-www-form-urlencoded", "kind=register"), status: 415, code: "unsupported_media_type"},
		{name: "multipart form", route: "POST /api/v1/events", do: postBody("multipart/form-data; boundary=x", "--x--"), status: 415, code: "unsupported_media_type"},
		{name: "Content-Type text/html", route: "POST /api/v1/events", do: postBody("text/html", "<p>"), status: 415, code: "unsupported_media_type"},
		{name: "Content-Type garbage ;;;=", route: "POST /api/v1/events", do: postBody(";;;=", "x"), status: 415, code: "unsupported_media_type"},
		{name: "PUT on the events route", route: "PUT /api/v1/events", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.do(http.MethodPut, "/api/v1/events", "text/plain", strings.NewReader("x"))
		}, status: 405, code: "method_not_allowed"},
		// Signatures.
		{name: "accepted note with one signature byte flipped", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return forge(f.accepted)
		}), status: 400, code: "bad_signature"},
		{name: "accepted note with its signature line removed", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			s := string(f.accepted)
			return []byte(s[:strings.Index(s, "\n\n")+2])
		}), status: 400, code: "malformed_event"},
		{name: "accepted note with its text changed (product)", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return bytes.Replace(f.accepted, []byte("Handbag"), []byte("Handbog"), 1)
		}), status: 400, code: "bad_signature"},
		{name: "maker's event signed by the courier's key", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return signText(f.e.t, `{"kind":"register","actor":"maker","time":"2026-03-01T12:00:00Z","item":"01/`+abuseGTIN+`/21/FORGED1","register":{"product":"Fake"}}`, f.e.keys["courier"])
		}), status: 400, code: "malformed_event"},
		{name: "maker's event signed by a stranger's key named maker", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			s, _ := newSigner(f.e.t, "maker")
			return f.e.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: mustItem(f.e.t, abuseGTIN, "FORGED2"),
				Register: &provenance.Register{Product: "Fake"}}, s)
		}), status: 400, code: "bad_signature"},
		{name: "event by an actor never enrolled", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			s, _ := newSigner(f.e.t, "stranger")
			return f.e.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "stranger", Item: mustItem(f.e.t, abuseGTIN, "FORGED3"),
				Register: &provenance.Register{Product: "Fake"}}, s)
		}), status: 404, code: "not_found"},
		{name: "enroll signed by a maker, not the operator", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			_, vkey := newSigner(f.e.t, "evil")
			return f.e.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: "maker",
				Enroll: &provenance.Actor{ID: "evil", Role: provenance.RoleManufacturer, Name: "Evil", Key: vkey}}, f.e.keys["maker"])
		}), status: 403, code: "wrong_role"},
		// Replays and custody.
		{name: "replay of the item's latest accepted event (a retry)", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte { return f.latest }), status: 200, code: "duplicate"},
		{name: "replay of an older accepted event (the register)", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte { return f.accepted }), status: 409, code: "already_registered"},
		{name: "replay of an accepted enroll (the actor's latest key event)", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte { return f.enrollMaker }), status: 200, code: "duplicate"},
		{name: "handoff by the maker, not the custodian", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return f.e.handoffLeaf("maker", f.id, provenance.Handoff{To: "courier"})
		}), status: 403, code: "not_custodian"},
		{name: "handoff with a stale prev", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return f.e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "courier", Item: f.id, Prev: f.e.last(mustItem(f.e.t, abuseGTIN, "OTHER1")),
				Handoff: &provenance.Handoff{To: "maker"}}, f.e.keys["courier"])
		}), status: 409, code: "stale_prev"},
		{name: "register of an item already registered", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return f.e.registerLeaf("maker", f.id, "Handbag again", "Shenzhen")
		}), status: 409, code: "already_registered"},
		{name: "receive by an actor the handoff did not name", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return f.e.receiveLeaf("maker", mustItem(f.e.t, abuseGTIN, "OTHER1"), "Paris")
		}), status: 403, code: "wrong_receiver"},
		// Times and text.
		{name: "handoff dated a day ahead of the server's clock", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return f.e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "courier", Item: f.id, Prev: merkle.LeafHash(f.latest),
				Time: time.Now().Add(24 * time.Hour).Truncate(time.Second), Handoff: &provenance.Handoff{To: "maker"}}, f.e.keys["courier"])
		}), status: 422, code: "time_in_future"},
		{name: "handoff dated before the item's previous event (backdated)", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return f.e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "courier", Item: f.id, Prev: merkle.LeafHash(f.latest),
				Time: time.Date(2026, 3, 1, 13, 30, 0, 0, time.UTC), Handoff: &provenance.Handoff{To: "maker"}}, f.e.keys["courier"])
		}), status: 422, code: "time_before_previous"},
		{name: "register whose product holds a right-to-left override (U+202E)", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			at := time.Now().UTC().Format(time.RFC3339)
			return signText(f.e.t, `{"kind":"register","actor":"maker","time":"`+at+`","item":"01/`+abuseGTIN+
				`/21/BIDI1","register":{"product":"Bag `+"\u202e"+`gnirts"}}`, f.e.keys["maker"])
		}), status: 400, code: "malformed_event"},
		// Digital Links on the resolver (HTML pages) and the API (JSON).
		{name: "GTIN with a bad check digit", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/09506000134353/21/ABUSE1"), status: 400, code: "page"},
		{name: "7-digit GTIN", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/1234567/21/ABUSE1"), status: 400, code: "page"},
		{name: "15-digit GTIN", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/109506000134352/21/ABUSE1"), status: 400, code: "page"},
		{name: "21-character serial", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/" + strings.Repeat("A", 21)), status: 400, code: "page"},
		{name: "1,000-character serial", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/" + strings.Repeat("A", 1000)), status: 400, code: "page"},
		{name: "serial %2e%2e%2f (\"../\", GS1 characters: unregistered)", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/%2e%2e%2f"), status: 301, code: ""},
		{name: "serial ..%2F (canonical form of the above: unregistered)", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/..%2F"), status: 404, code: "page"},
		{name: "serial %2e%2e%2f%2e%2e%2fetc%2fpasswd", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/%2e%2e%2f%2e%2e%2fetc%2fpasswd"), status: 301, code: ""},
		{name: "serial with %00", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/AB%00CD"), status: 400, code: "page"},
		{name: "double-encoded %252F", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/AB%252FCD"), status: 404, code: "page"},
		{name: "overlong UTF-8 %C0%AF", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/AB%C0%AFCD"), status: 400, code: "page"},
		{name: "bad percent-encoding %zz", route: "GET /01/{gtin}/21/{serial}", do: func(f *abuseFix) (*http.Response, []byte) { return f.rawGet("/01/" + abuseGTIN + "/21/AB%zz") }, status: 400, code: "net/http"},
		{name: "raw request line /01/../../etc/passwd", route: "GET /01/*rest", do: func(f *abuseFix) (*http.Response, []byte) { return f.rawGet("/01/../../etc/passwd") }, status: 400, code: "page"},
		{name: "raw request line with a NUL byte", route: "GET /01/*rest", do: func(f *abuseFix) (*http.Response, []byte) { return f.rawGet("/01/" + abuseGTIN + "/21/A\x00B") }, status: 400, code: "net/http"},
		{name: "path traversal /01/../../etc/passwd", route: "GET /01/*rest", do: getPath("/01/../../etc/passwd"), status: 400, code: "page"},
		{name: "extra segment after the serial", route: "GET /01/*rest", do: getPath(item + "/../../etc/passwd"), status: 400, code: "page"},
		{name: "AI written 1, not 01", route: "GET /1/{gtin}/21/{serial}", do: getPath("/1/" + abuseGTIN + "/21/ABUSE1"), status: 404, code: "page"},
		{name: "serial in the wrong case (serials are case-sensitive)", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/" + abuseGTIN + "/21/abuse1"), status: 404, code: "page"},
		{name: "13-digit GTIN (redirected to the 14-digit form)", route: "GET /01/{gtin}/21/{serial}", do: getPath("/01/9506000134352/21/ABUSE1"), status: 301, code: ""},
		{name: "API item with a bad check digit", route: "GET /api/v1/items/:gtin/:serial", do: getPath("/api/v1/items/09506000134353/ABUSE1"), status: 400, code: "bad_digital_link"},
		{name: "API item with serial %00", route: "GET /api/v1/items/:gtin/:serial", do: getPath("/api/v1/items/" + abuseGTIN + "/AB%00"), status: 400, code: "bad_digital_link"},
		{name: "API actor id ../../etc/passwd", route: "GET /api/v1/actors/:id", do: getPath("/api/v1/actors/..%2F..%2Fetc%2Fpasswd"), status: 400, code: "malformed_event"},
		{name: "label signature that is not base64", route: "GET /01/{gtin}/21/{serial}?8030=", do: getPath(item + "?8030=%3Cscript%3E"), status: 400, code: "page"},
		{name: "two label signatures", route: "GET /01/{gtin}/21/{serial}?8030=", do: getPath(item + "?8030=a&8030=b"), status: 400, code: "page"},
		// Script and markup in every text field of events: accepted, and
		// escaped on the pages (TestAbuseEscaped checks the HTML).
		{name: "register: product, lot, description, place hold <script>", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return xssEvent(f, provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: mustItem(f.e.t, abuseGTIN, "XSS1"), Place: `<script>p</script>`,
				Register: &provenance.Register{Product: xss + `"'&`, Lot: `<b>L</b>`, Description: `<img src=x onerror=alert(1)>`}}, "maker")
		}), status: 201, code: "receipt", appends: 1},
		{name: "enroll: actor name holds <script>", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			s, vkey := newSigner(f.e.t, "xss-maker")
			f.e.keys["xss-maker"] = s
			return xssEvent(f, provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
				Enroll: &provenance.Actor{ID: "xss-maker", Role: provenance.RoleManufacturer, Name: xss, Key: vkey}}, provenance.OperatorID)
		}), status: 201, code: "receipt", appends: 1},
		{name: "dispute: reason holds <script>", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			id := mustItem(f.e.t, abuseGTIN, "XSS1")
			return xssEvent(f, provenance.Event{Kind: provenance.KindDispute, Actor: "maker", Item: id, Prev: f.e.last(id),
				Dispute: &provenance.Dispute{Reason: xss}}, "maker")
		}), status: 201, code: "receipt", appends: 1},
		{name: "ruling: decision holds <script>", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			id := mustItem(f.e.t, abuseGTIN, "XSS1")
			return xssEvent(f, provenance.Event{Kind: provenance.KindRuling, Actor: provenance.OperatorID, Item: id, Prev: f.e.last(id),
				Ruling: &provenance.Ruling{Decision: xss}}, provenance.OperatorID)
		}), status: 201, code: "receipt", appends: 1},
		{name: "register by an actor whose name holds <script>", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return xssEvent(f, provenance.Event{Kind: provenance.KindRegister, Actor: "xss-maker", Item: mustItem(f.e.t, abuseGTIN, "XSS2"),
				Register: &provenance.Register{Product: "P"}}, "xss-maker")
		}), status: 201, code: "receipt", appends: 1},
		{name: "revoke: reason holds <script>", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return xssEvent(f, provenance.Event{Kind: provenance.KindRevoke, Actor: provenance.OperatorID,
				Revoke: &provenance.Revoke{ID: "xss-maker", Reason: xss}}, provenance.OperatorID)
		}), status: 201, code: "receipt", appends: 1},
		{name: "place longer than 64 bytes of markup", route: "POST /api/v1/events", do: postLeaf(func(f *abuseFix) []byte {
			return signText(f.e.t, `{"kind":"register","actor":"maker","time":"2026-03-01T12:00:00Z","place":"`+strings.Repeat(xss, 3)+`","item":"01/`+abuseGTIN+`/21/XSS3","register":{"product":"P"}}`, f.e.keys["maker"])
		}), status: 400, code: "malformed_event"},
		// Batches of events.
		{name: "batch of 1,001 events", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(batchOf(f.e.t, f.accepted, 1001))
		}, status: 413, code: "too_large"},
		{name: "batch body of 5 MiB", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(`{"events":["` + strings.Repeat("a", 5<<20) + `"]}`)
		}, status: 413, code: "too_large"},
		{name: "batch streamed 10 MiB (chunked, no length)", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.do(http.MethodPost, "/api/v1/events/batch", "application/json", io.MultiReader(strings.NewReader(`{"events":["`), &zeros{n: 10 << 20}))
		}, status: 413, code: "too_large"},
		{name: "batch that is a JSON array", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(`["` + strings.ReplaceAll(string(f.accepted), "\n", `\n`) + `"]`)
		}, status: 400, code: "bad_request"},
		{name: "batch nested 10,000 arrays deep", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(`{"events":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`)
		}, status: 400, code: "bad_request"},
		{name: "batch sent as text/plain", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.do(http.MethodPost, "/api/v1/events/batch", "text/plain", strings.NewReader(batchOf(f.e.t, f.accepted, 1)))
		}, status: 415, code: "unsupported_media_type"},
		{name: "batch of 1,000 replays of an accepted note", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(batchOf(f.e.t, f.latest, 1000))
		}, status: 200, code: "batch", results: "1000 duplicate"},
		{name: "batch of 1,000 replays of an older note of the item", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(batchOf(f.e.t, f.accepted, 1000))
		}, status: 200, code: "batch", results: "999 not_attempted, 1 already_registered"},
		{name: "batch of 1,000 notes of \"hello\"", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.postBatch(batchOf(f.e.t, []byte("hello"), 1000))
		}, status: 200, code: "batch", results: "1000 malformed_event"},
		{name: "batch: a forged handoff, then a valid receive after it", route: "POST /api/v1/events/batch", do: func(f *abuseFix) (*http.Response, []byte) {
			h := forge(f.e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "courier", Item: f.id, Prev: merkle.LeafHash(f.latest),
				Handoff: &provenance.Handoff{To: "maker"}}, f.e.keys["courier"]))
			r := f.e.sign(provenance.Event{Kind: provenance.KindReceive, Actor: "maker", Item: f.id, Prev: merkle.LeafHash(h),
				Receive: &provenance.Receive{By: "maker"}}, f.e.keys["maker"])
			return f.postBatch(string(batchBody(f.e.t, h, r)))
		}, status: 200, code: "batch", results: "1 bad_signature, 1 not_attempted"},
		// Label sheets.
		{name: "label sheet with 10,000 items", route: "GET /labels", do: func(f *abuseFix) (*http.Response, []byte) {
			q := url.Values{}
			for i := range 10000 {
				q.Add("item", fmt.Sprintf("/01/%s/21/S%d", abuseGTIN, i))
			}
			return f.do(http.MethodGet, "/labels?"+q.Encode(), "", nil)
		}, status: 400, code: "page"},
		{name: "label sheet with 101 items", route: "GET /labels", do: func(f *abuseFix) (*http.Response, []byte) {
			return f.do(http.MethodGet, "/labels?"+strings.Repeat("item="+url.QueryEscape(item)+"&", 101), "", nil)
		}, status: 400, code: "page"},
		{name: "label sheet item <script>", route: "GET /labels", do: getPath("/labels?item=" + url.QueryEscape(xss)), status: 400, code: "page"},
		// Headers and query strings.
		{name: "2 MiB header", route: "GET /01/{gtin}/21/{serial}", do: getPath(item, "X-Junk", strings.Repeat("a", 2<<20)), status: 431, code: "net/http"},
		{name: "Accept-Language of 100 KiB of garbage", route: "GET /01/{gtin}/21/{serial}", do: getPath(item, "Accept-Language", strings.Repeat("zz-;q=,", 15000)), status: 200, code: "page"},
		{name: "10,000 query parameters on the history page", route: "GET /01/{gtin}/21/{serial}", do: getPath(item + "?" + strings.Repeat("a=1&", 10000)), status: 200, code: "page"},
		{name: "?linkType=<script>", route: "GET /01/{gtin}/21/{serial}", do: getPath(item + "?linkType=" + url.QueryEscape(xss)), status: 200, code: "page"},
		{name: "unknown API route", route: "GET /api/*", do: getPath("/api/v1/%3Cscript%3E"), status: 404, code: "not_found"},
		{name: "tile path traversal", route: "GET /tile/*path", do: getPath("/tile/../../etc/passwd"), status: 400, code: ""},
		{name: "asset path traversal", route: "GET /assets/*filepath", do: getPath("/assets/../../go.mod"), status: 404, code: ""},
	}
}

func newAbuseFix(t *testing.T) *abuseFix {
	e := newEnv(t, true)
	id := mustItem(t, abuseGTIN, "ABUSE1")
	signer, vkey := newSigner(t, "maker")
	e.keys["maker"] = signer
	enrollMaker := e.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: "maker", Role: provenance.RoleManufacturer, Name: "Maker", Key: vkey}}, e.node.Operator)
	e.ok(enrollMaker)
	e.enroll("courier", provenance.RoleCourier, "Courier")
	reg := e.registerLeaf("maker", id, "Handbag", "Shenzhen")
	e.ok(reg)
	e.ok(e.handoffLeaf("maker", id, provenance.Handoff{To: "courier"}))
	latest := e.receiveLeaf("courier", id, "Hong Kong")
	e.ok(latest)
	other := mustItem(t, abuseGTIN, "OTHER1")
	e.ok(e.registerLeaf("maker", other, "Other", "Shenzhen"))
	e.ok(e.handoffLeaf("maker", other, provenance.Handoff{To: "courier"})) // so that OTHER1's last moves
	return &abuseFix{e: e, id: id, accepted: reg, latest: latest, enrollMaker: enrollMaker}
}

func TestAbuse(t *testing.T) {
	f := newAbuseFix(t)
	for _, row := range abuseRows() {
		t.Run(row.name, func(t *testing.T) {
			if row.skip != "" {
				t.Skip(row.skip)
			}
			f.e.t = t
			before := f.e.checkpointSize()
			resp, body := row.do(f)
			if resp.StatusCode >= 500 {
				t.Fatalf("%s: %d (5xx)\n%.500s", row.route, resp.StatusCode, body)
			}
			if resp.StatusCode != row.status {
				t.Errorf("%s: status %d, want %d\n%.500s", row.route, resp.StatusCode, row.status, body)
			}
			ct := resp.Header.Get("Content-Type")
			switch row.code {
			case "":
			case "page":
				if !strings.HasPrefix(ct, "text/html") {
					t.Errorf("Content-Type %q, want an HTML page", ct)
				}
				if bytes.Contains(body, []byte("<script>alert")) || bytes.Contains(body, []byte("<script>p<")) {
					t.Errorf("page holds unescaped script:\n%.2000s", body)
				}
			case "net/http":
				// Go's server answers before the handler runs.
			case "batch":
				var br batchResponse
				if err := json.Unmarshal(body, &br); err != nil {
					t.Fatalf("batch answer: %v\n%.500s", err, body)
				}
				if got := batchSummary(br); got != row.results {
					t.Errorf("batch results %q, want %q", got, row.results)
				}
				for i, r := range br.Results {
					if r.Status >= 500 {
						t.Errorf("result %d: %d %+v", i, r.Status, r.Error)
					}
				}
			case "receipt", "duplicate":
				var r receipt
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatalf("receipt: %v\n%s", err, body)
				}
				if r.Duplicate != (row.code == "duplicate") {
					t.Errorf("duplicate %v, want %v", r.Duplicate, row.code == "duplicate")
				}
			default:
				var ae apiErr
				if err := json.Unmarshal(body, &ae); err != nil {
					t.Fatalf("not a JSON error (%s): %v\n%.500s", ct, err, body)
				}
				if ae.Error.Code != row.code {
					t.Errorf("code %q, want %q (message %q)", ae.Error.Code, row.code, ae.Error.Message)
				}
				if ae.Error.Message == "" {
					t.Errorf("code %q without a message", ae.Error.Code)
				}
				t.Logf("%d %s: %.200s", resp.StatusCode, ae.Error.Code, ae.Error.Message)
			}
			if got := f.e.checkpointSize() - before; got != uint64(row.appends) {
				t.Errorf("appended %d entries, want %d", got, row.appends)
			}
			// The server still serves the item's history page.
			resp, body = f.do(http.MethodGet, f.id.DigitalLink(""), "", nil)
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("Handbag")) {
				t.Fatalf("history page after the row: %d\n%.300s", resp.StatusCode, body)
			}
		})
	}
}

// TestAbuseEscaped submits events with script and markup in every text
// field and checks that every page and JSON answer that shows them escapes
// them.
func TestAbuseEscaped(t *testing.T) {
	f := newAbuseFix(t)
	for _, row := range abuseRows() {
		if row.code == "receipt" {
			if resp, body := row.do(f); resp.StatusCode != row.status {
				t.Fatalf("%s: %d %s", row.name, resp.StatusCode, body)
			}
		}
	}
	raw := []string{"<script>", "<b>L</b>", "<img src=x"}
	pages := []string{
		"/01/" + abuseGTIN + "/21/XSS1", "/01/" + abuseGTIN + "/21/XSS1?lang=zh",
		"/01/" + abuseGTIN + "/21/XSS2", "/actors/xss-maker", "/actors/maker",
		"/labels?item=" + url.QueryEscape("/01/"+abuseGTIN+"/21/XSS1"), "/courier", "/manufacturer",
	}
	for _, p := range pages {
		resp, body := f.do(http.MethodGet, p, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, resp.StatusCode)
			continue
		}
		for _, r := range raw {
			if bytes.Contains(body, []byte(r)) {
				i := bytes.Index(body, []byte(r))
				t.Errorf("%s holds raw %q: ...%s...", p, r, body[max(0, i-200):min(len(body), i+100)])
			}
		}
	}
	// The history page shows the product, escaped.
	_, body := f.do(http.MethodGet, "/01/"+abuseGTIN+"/21/XSS1", "", nil)
	if !bytes.Contains(body, []byte("&lt;script&gt;alert(1)&lt;/script&gt;")) {
		t.Errorf("history page does not show the product escaped")
	}
	// Every <script> element is an external one of the page's own.
	for _, n := range doc(t, body).Find("script").Nodes {
		if n.FirstChild != nil {
			t.Errorf("inline script on the history page: %q", n.FirstChild.Data)
		}
	}
	// JSON answers escape <, > and & (gin's JSON).
	for _, p := range []string{"/api/v1/items/" + abuseGTIN + "/XSS1", "/api/v1/actors/xss-maker", "/01/" + abuseGTIN + "/21/XSS1?linkType=gs1:traceability"} {
		resp, body := f.do(http.MethodGet, p, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, resp.StatusCode)
			continue
		}
		if bytes.Contains(body, []byte("<script>")) {
			t.Logf("%s: JSON (%s) holds <script> as a string value", p, resp.Header.Get("Content-Type"))
		}
	}
}

// TestAbuseSlowClient sends the headers and then the body at one byte per
// 100 ms. web.Server sets no deadline of its own (cmd/provd's http.Server
// sets ReadHeaderTimeout 10s and IdleTimeout 2m, no ReadTimeout): the
// handler waits for the slow body and answers it.
func TestAbuseSlowClient(t *testing.T) {
	f := newAbuseFix(t)
	before := f.e.checkpointSize()
	start := time.Now()
	resp, body := f.do(http.MethodPost, "/api/v1/events", "text/plain", &slowReader{n: 15, d: 100 * time.Millisecond})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("slow body: %d %s", resp.StatusCode, body)
	}
	t.Logf("slow body of 15 bytes at 1 byte/100ms answered %d after %v", resp.StatusCode, time.Since(start).Round(time.Millisecond))
	if f.e.checkpointSize() != before {
		t.Error("appended")
	}

	// Headers sent, body promised and never sent: the server keeps the
	// connection; the client gives up after 1 s and the server still serves.
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nprov")
	conn.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Errorf("server answered a body it has not read yet (%d, %v)", n, err)
	}
	resp, _ = f.do(http.MethodGet, f.id.DigitalLink(""), "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("history page while a slow client holds a connection: %d", resp.StatusCode)
	}
}

// TestAbuseTable prints the rows as the table of docs/abuse.md:
// go test ./web -run TestAbuseTable -v -abuse-table
func TestAbuseTable(t *testing.T) {
	if !*abuseTable {
		t.Skip("pass -abuse-table to print docs/abuse.md's table")
	}
	var b strings.Builder
	b.WriteString("| input | route | status | code | appended |\n|---|---|---|---|---|\n")
	for _, r := range abuseRows() {
		code := "`" + r.code + "`"
		switch r.code {
		case "":
			code = "—"
		case "page":
			code = "HTML page"
		case "net/http":
			code = "net/http (plain text, before the handler)"
		case "receipt", "duplicate":
			code = "receipt, `duplicate: " + fmt.Sprint(r.code == "duplicate") + "`"
		case "batch":
			code = "per event: " + r.results
		}
		app := "nothing"
		if r.appends > 0 {
			app = fmt.Sprint(r.appends)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %d | %s | %s |\n", strings.ReplaceAll(r.name, "|", `\|`), r.route, r.status, code, app)
	}
	fmt.Print(b.String())
}
