// Package templates holds the server-rendered pages (templ components) and
// the view models they show. A view model holds only what a page shows,
// already formatted where formatting is not the page's business; the web
// package fills it from the domain. Nothing here calls a service.
package templates

import "time"

// Lang is a page language: "en" or "zh" (Simplified Chinese).
type Lang string

// The languages pages are written in.
const (
	English Lang = "en"
	Chinese Lang = "zh"
)

// Page is what every page shares.
type Page struct {
	Lang  Lang
	Title string
	// Path is the request path without query, for the language switch
	// links (?lang=en / ?lang=zh).
	Path string
	// Query is the request's query string without lang (URL-encoded, no
	// "?"), kept by the language switch links.
	Query string
	// StyleURL is the stylesheet's URL; "" means /assets/style.css.
	StyleURL string
	// Mirror, on a read-only mirror, says whose log the page shows; nil
	// on the log's own server.
	Mirror *MirrorNote
}

// A MirrorNote is what every page of a mirror says: the server it
// mirrors, the log's origin, the size of the latest checkpoint it
// verified, and whether it still follows.
type MirrorNote struct {
	URL    string
	Origin string
	Size   uint64
	// Stopped: the origin's log contradicted what was verified, and the
	// mirror shows the last state it verified.
	Stopped bool
}

// VerdictKind is the one-word answer a buyer reads first.
type VerdictKind string

// The verdicts.
const (
	VerdictGenuine      VerdictKind = "genuine"      // registered, chain intact, in custody or in transit
	VerdictDelivered    VerdictKind = "delivered"    // already received by its buyer: a second sale as new is suspect
	VerdictDisputed     VerdictKind = "disputed"     // a dispute is open
	VerdictUnregistered VerdictKind = "unregistered" // well-formed code, not in the log: may be counterfeit
	VerdictInvalid      VerdictKind = "invalid"      // not a valid code at all
)

// An ActorInfo is an actor as a page shows it.
type ActorInfo struct {
	ID       string
	Name     string
	Role     string // manufacturer, courier, reseller, buyer, operator
	Verified bool   // enrolled by the operator and not revoked
	URL      string // the actor page, "" for buyers
}

// A ProofInfo is one event's inclusion proof, for the page and for the
// in-browser verifier.
type ProofInfo struct {
	LeafIndex uint64
	LeafHash  string   // base64
	Hashes    []string // base64, leaf's sibling first
}

// An EventRow is one line of an item's timeline.
type EventRow struct {
	Index  uint64
	Time   time.Time
	Kind   string // register, handoff, receive, dispute, ruling
	Actor  ActorInfo
	To     string // handoff: the receiver's display name, or "a buyer (claim code)"
	Place  string
	Detail string // dispute reason, ruling decision, product for register
	Proof  ProofInfo
}

// CheckpointInfo is the signed checkpoint the proofs lead to.
type CheckpointInfo struct {
	Origin string
	Size   uint64
	Root   string // base64
	Note   string // the signed note, verbatim
}

// KeysInfo is what a verifier pins.
type KeysInfo struct {
	Origin      string
	LogKey      string
	OperatorKey string
}

// HistoryView is the page a QR code opens: the verdict first, then the
// item, its manufacturer, the timeline with proofs, and the checkpoint.
type HistoryView struct {
	Page
	Verdict      VerdictKind
	DigitalLink  string // canonical GS1 Digital Link URI
	GTIN, Serial string
	Product      string
	Lot          string
	Description  string
	Manufacturer ActorInfo
	Custodian    ActorInfo // for VerdictGenuine; the buyer for VerdictDelivered
	InTransitTo  string    // display name of the pending receiver, if a handoff is pending
	DeliveredOn  time.Time // VerdictDelivered
	DisputeNote  string    // VerdictDisputed: the reason given
	Events       []EventRow
	Scans        uint64 // times this code was opened, this one included
	Checkpoint   CheckpointInfo
	Keys         KeysInfo
	BundleURL    string // JSON proof bundle, for download and the in-browser check
	QRURL        string // this item's QR image (SVG)

	Item         string // the item id as events name it, "01/{gtin}/21/{serial}"
	Prev         string // leaf hash (base64) of the item's latest event: the next event's prev
	PendingClaim bool   // the pending handoff is to a buyer by claim code
	Pending      bool   // a handoff is pending (to InTransitTo, or to a buyer if PendingClaim)
	Status       string // the item's status as the log has it: in custody, in transit, delivered, disputed
	EPCISURL     string // EPCIS 2.0 export of the history

	// Label is the check of the label's signature (?8030=), nil when the
	// page was opened without one.
	Label *LabelCheck
}

// ProblemView is the page for a code that is not valid (400) or not
// registered (404): it says plainly what is wrong and what it means.
type ProblemView struct {
	Page
	Verdict VerdictKind // VerdictInvalid or VerdictUnregistered
	Input   string      // what was scanned, as given
	Reason  string      // what is wrong with it (VerdictInvalid)
	Status  int
}

// ErrorView is any other error page: a plain message, never internals.
type ErrorView struct {
	Page
	Status  int
	Message string
}

// ActorView is the public page of one actor: who it is, who vouches for
// it, and its recent events, so it can spot misuse of its key.
type ActorView struct {
	Page
	Actor      ActorInfo
	EnrolledAt uint64 // log index of the current enrollment
	Revoked    bool
	RevokedAt  uint64
	Key        string // verifier key
	Events     []EventRow
	// EventsListed is false when the server cannot list an actor's events;
	// the page then says so instead of showing an empty list.
	EventsListed bool
}

// CourierView is the phone page for couriers, daigou and retailers: scan,
// see the item, hand off or accept.
type CourierView struct {
	Page
	// Item is filled when the page was opened for one item (?item=...).
	Item *HistoryView
	// Input is the ?item= value as given; Problem says what is wrong with
	// it (not a valid code, or not registered) when Item is nil.
	Input   string
	Problem string
}

// ManufacturerView is the desk page for registering items and printing
// labels.
type ManufacturerView struct {
	Page
	BaseURL string
}

// A Label is one item's label on a sheet.
type Label struct {
	DigitalLink string
	QRURL       string // SVG
	Product     string
	GTIN        string
	Serial      string
}

// LabelsView is a printable A4 sheet of labels.
type LabelsView struct {
	Page
	Labels []Label
	// Max is the most labels one sheet request may hold.
	Max int
}

// VerifyView is the offline verifier page: a proof bundle (file, drop,
// paste, or ?bundle= from this origin) checked in the browser against
// keys the user pins, with verify.js.
type VerifyView struct {
	Page
	// Keys prefill the pinned keys: this server's /keys. The page says a
	// careful user pastes keys published elsewhere instead.
	Keys KeysInfo
	// BundleURL is a same-origin path the page loads a bundle from, "" for
	// none (?bundle=).
	BundleURL string
	// StandaloneURL downloads the page as one self-contained HTML file.
	StandaloneURL string
	// Standalone renders that file: the stylesheet and the scripts inline
	// (CSP allows them by hash), no link to anything.
	Standalone bool
	Style      string // the stylesheet, inline (Standalone)
	Script     string // verify.js and the page glue, inline (Standalone)
	CSP        string // the meta Content-Security-Policy (Standalone)
}

// LabelCheck is the outcome of checking a label's AI 8030 signature
// against the enrolled key of the item's manufacturer.
type LabelCheck struct {
	Signature    string // the ?8030= value as given
	OK           bool
	Manufacturer string // display name of the manufacturer
	Reason       string // why it failed, when !OK
	// For the page's own re-check in the browser: the signed text and the
	// manufacturer's verifier key the server checked against.
	Text string
	Key  string
}
