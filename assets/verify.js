// verify.js: "Verify on this phone". Checks an item's proof bundle
// (docs/bundle.md) entirely in the browser, against the keys pinned on the
// page, with WebCrypto (SHA-256 and Ed25519). Nothing the server says is
// trusted beyond those pinned keys: the bundle is fetched as plain bytes and
// every signature, inclusion proof, prev link, order of event times, free
// text field and custody rule is checked here, the same checks
// provenance.VerifyBundle makes in Go.
//
// DOM contract (the history page, server-rendered, works without this file):
//   [data-testid=verify]         data-bundle-url, data-origin, data-log-key,
//                                data-operator-key; optional data-item
//                                ("01/{gtin}/21/{serial}") that the bundle
//                                must be for, and data-policy (a witness
//                                policy, as the policy option below)
//   [data-testid=verify-button]  starts the check
//   [data-testid=verify-result]  gets the outcome as text, and
//                                data-verified="true" or "false"
//
// API (for the offline verifier page and tests):
//   window.provtrailVerify(bundleText, {origin, logKey, operatorKey, policy})
//     -> Promise<{ok, item, events, status, custodian, checkpoint, witnessed, error}>
//   policy, optional, is the text of a C2SP tlog-policy file (as prov
//   reads it: log, witness, group and quorum lines, and an "operator
//   <vkey>" line, used when operatorKey is empty): the checkpoint must then
//   also carry the witness cosignatures (tlog-cosignature/v1) its quorum
//   needs. witnessed is then {quorum, witnesses}, else null.
//   window.provtrailVerifyLib: the building blocks (parsers, RFC 6962
//     inclusion check, canonical JSON), for reuse.
//
// A classic script (no modules, no build step), safe under a strict CSP:
// no eval, no inline handlers, output only through textContent.
(() => {
  'use strict';

  const EVENT_HEADER = 'provtrail-event/v1';
  const BUNDLE_FORMAT = 'provtrail-bundle/v1';
  const PROOF_HEADER = 'c2sp.org/tlog-proof@v1';
  const SIG_PREFIX = '\u2014 '; // "— ", the C2SP signed-note signature line prefix
  const OPERATOR_KINDS = ['enroll', 'revoke', 'ruling'];
  const ITEM_KINDS = ['register', 'handoff', 'receive', 'dispute', 'ruling'];
  const ALL_KINDS = ['enroll', 'revoke', 'register', 'handoff', 'receive', 'dispute', 'ruling'];
  const BUYER_ID = 'buyer';

  // A VerifyError carries the exact reason shown to the user.
  class VerifyError extends Error {}
  const fail = (msg) => { throw new VerifyError(msg); };

  // ---- bytes, base64, hashes ------------------------------------------------

  const utf8 = new TextEncoder();
  // fatal: invalid UTF-8 is an error, never silently replaced.
  const utf8Strict = new TextDecoder('utf-8', { fatal: true });

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) { out.set(p, off); off += p.length; }
    return out;
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function b64encode(bytes) {
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }

  // Padded standard base64: the alphabet, whole groups of four.
  const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

  // b64bytes decodes s, which B64_RE accepts, as atob does: whatever the
  // unused bits of its last digit.
  function b64bytes(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // Strict standard base64, as Go's base64.StdEncoding.Strict(): padding
  // required and unused bits zero, so each value has one text form.
  function b64decode(s, what) {
    if (typeof s !== 'string' || !B64_RE.test(s)) fail(`${what} is not base64`);
    const out = b64bytes(s);
    if (b64encode(out) !== s) fail(`${what} is not canonical base64`);
    return out;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  // RFC 6962 leaf hash: SHA-256(0x00 || leaf).
  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  // RFC 6962 interior node hash: SHA-256(0x01 || left || right).
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // ---- canonical JSON, as Go's encoding/json writes it ----------------------

  // goString quotes s exactly as Go's encoder with SetEscapeHTML(false):
  // JSON.stringify does the same except that Go also escapes U+2028/U+2029.
  function goString(s) {
    return JSON.stringify(s).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  }

  // Field lists of provenance.wireEvent and its payloads, in Go's struct
  // order. "?" marks omitempty. A missing required string encodes as "",
  // as Go would write the zero value.
  const SCHEMA = {
    event: [['kind', 's'], ['actor', 's'], ['time', 's'], ['place', 's?'], ['item', 's?'], ['prev', 's?'],
      ['enroll', 'actor?'], ['revoke', 'revoke?'], ['register', 'register?'], ['handoff', 'handoff?'],
      ['receive', 'receive?'], ['dispute', 'dispute?'], ['ruling', 'ruling?']],
    actor: [['id', 's'], ['role', 's'], ['name', 's'], ['key', 's']],
    revoke: [['id', 's'], ['reason', 's']],
    register: [['product', 's'], ['lot', 's?'], ['description', 's?']],
    handoff: [['to', 's?'], ['claim', 's?'], ['salt', 's?']],
    receive: [['by', 's?'], ['claim_code', 's?'], ['buyer_key', 's?']],
    dispute: [['reason', 's'], ['evidence', 'strings?']],
    ruling: [['decision', 's']],
  };

  // canonicalJSON writes obj (of SCHEMA type) compactly, fields in order,
  // omitempty fields left out: the one byte form the Go parser accepts.
  // Values of the wrong type throw, as Go's decoder would refuse them.
  function canonicalJSON(obj, type = 'event') {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail(`${type} is not a JSON object`);
    const parts = [];
    for (const [name, spec] of SCHEMA[type]) {
      const optional = spec.endsWith('?');
      const kind = optional ? spec.slice(0, -1) : spec;
      const v = obj[name];
      if (kind === 's') {
        if (v !== undefined && typeof v !== 'string') fail(`field ${name} is not a string`);
        if (optional && !v) continue;
        parts.push(`"${name}":${goString(v || '')}`);
      } else if (kind === 'strings') {
        if (v !== undefined && v !== null && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) {
          fail(`field ${name} is not a list of strings`);
        }
        if (!v || v.length === 0) continue;
        parts.push(`"${name}":[${v.map(goString).join(',')}]`);
      } else {
        if (v === undefined || v === null) continue; // a nil pointer: omitted
        parts.push(`"${name}":${canonicalJSON(v, kind)}`);
      }
    }
    return `{${parts.join(',')}}`;
  }

  // ---- signed notes (C2SP signed-note, golang.org/x/mod/sumdb/note) ---------

  // A key name: non-empty, no white space, no '+'.
  const validName = (n) => n !== '' && !/[\s+]/u.test(n);

  // keyHash is the 4-byte key id of an Ed25519 signed-note key:
  // first 4 bytes of SHA-256(name || "\n" || 0x01 || pubkey), big-endian.
  async function keyHash(name, pub) {
    const h = await sha256(concat(utf8.encode(name + '\n'), Uint8Array.of(1), pub));
    return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
  }

  // parseVerifierKey parses "name+hexhash+base64(0x01||pubkey)", checks the
  // hash and imports the Ed25519 public key.
  async function parseVerifierKey(vkey, what) {
    // Cut at the first two '+': the base64 key may contain '+' itself.
    const m = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(typeof vkey === 'string' ? vkey : '');
    if (!m) fail(`${what} is not a verifier key (name+hash+base64)`);
    const [, name, hash16, key64] = m;
    if (!validName(name) || !/^[0-9a-fA-F]{8}$/.test(hash16)) fail(`${what} is not a verifier key (name+hash+base64)`);
    const raw = b64decode(key64, what);
    if (raw.length !== 33 || raw[0] !== 1) fail(`${what} is not an Ed25519 key`);
    const pub = raw.slice(1);
    const hash = parseInt(hash16, 16);
    if ((await keyHash(name, pub)) !== hash) fail(`${what}: key hash does not match the key`);
    let key;
    try {
      key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, true, ['verify']);
    } catch (e) {
      fail(`this browser cannot check Ed25519 signatures (${e.message})`);
    }
    return { name, hash, key, text: vkey };
  }

  // parseNote splits a signed note into its text and signature lines, with
  // the checks Go's note.Open makes before it verifies anything, and one
  // more, as the Go parsers make: every signature's base64 must be
  // canonical. note.Open (and atob) ignore the unused bits of the last
  // base64 digit, so one signature could be written four ways, and one
  // signed event would have four leaves with four leaf hashes.
  function parseNote(bytes, what) {
    let msg;
    try { msg = utf8Strict.decode(bytes); } catch { fail(`${what} is not valid UTF-8`); }
    if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) fail(`${what} contains control characters`);
    const split = msg.lastIndexOf('\n\n');
    if (split < 0) fail(`${what} is not a signed note`);
    const text = msg.slice(0, split + 1);
    const block = msg.slice(split + 2);
    if (block === '' || !block.endsWith('\n')) fail(`${what} is not a signed note`);
    const sigs = [];
    for (const line of block.slice(0, -1).split('\n')) {
      if (!line.startsWith(SIG_PREFIX)) fail(`${what} has a malformed signature line`);
      const rest = line.slice(SIG_PREFIX.length);
      const sp = rest.indexOf(' ');
      const name = sp < 0 ? rest : rest.slice(0, sp);
      const b64 = sp < 0 ? '' : rest.slice(sp + 1);
      if (!validName(name) || !B64_RE.test(b64)) fail(`${what} has a malformed signature line`);
      const sig = b64bytes(b64);
      if (sig.length < 5) fail(`${what} has a malformed signature line`);
      if (b64encode(sig) !== b64) fail(`${what}: signature base64 is not canonical`);
      const hash = ((sig[0] << 24) | (sig[1] << 16) | (sig[2] << 8) | sig[3]) >>> 0;
      sigs.push({ name, hash, b64, sig: sig.slice(4) });
    }
    if (sigs.length > 100) fail(`${what} has too many signatures`);
    return { text, sigs };
  }

  const ed25519Verify = (vk, sig, text) =>
    crypto.subtle.verify({ name: 'Ed25519' }, vk.key, sig, utf8.encode(text));

  // ---- checkpoint and tlog-proof --------------------------------------------

  const decimal = (s) => /^(0|[1-9][0-9]*)$/.test(s);

  // verifyCheckpoint checks the checkpoint note is signed by the pinned log
  // key (other signatures, e.g. witness cosignatures, are ignored) and that
  // its body is "origin\nsize\nroot\n" for the pinned origin, canonically.
  async function verifyCheckpoint(cpText, origin, logKey) {
    const n = parseNote(utf8.encode(cpText), 'the checkpoint');
    const mine = n.sigs.filter((s) => s.name === logKey.name && s.hash === logKey.hash);
    if (mine.length === 0) fail('the checkpoint is not signed by the pinned log key');
    for (const s of mine) {
      if (!(await ed25519Verify(logKey, s.sig, n.text))) fail('the checkpoint signature by the log key is invalid');
    }
    const lines = n.text.split('\n');
    if (lines.length < 4) fail('the checkpoint is malformed');
    const [cpOrigin, size, root] = lines;
    if (cpOrigin !== origin) fail(`the checkpoint is for log "${cpOrigin}", not the pinned "${origin}"`);
    if (!decimal(size) || BigInt(size) >= 1n << 64n) fail('the checkpoint size is malformed');
    const rootBytes = b64decode(root, 'the checkpoint root');
    if (rootBytes.length !== 32) fail('the checkpoint root is not a SHA-256 hash');
    return { origin, size: BigInt(size), root: rootBytes, note: cpText };
  }

  // ---- witness policy (C2SP tlog-policy, tlog-cosignature/v1) -----------------

  // parseTypedKey parses a vkey "name+hexhash+base64(type||key)" and checks
  // its type, size and key hash (SHA-256(name || "\n" || type || key)).
  async function parseTypedKey(vkey, type, what) {
    const m = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(vkey);
    if (!m || !validName(m[1]) || !/^[0-9a-fA-F]{8}$/.test(m[2])) fail(`${what} is not a verifier key (name+hash+base64)`);
    const raw = b64decode(m[3], what);
    if (raw.length !== 33 || raw[0] !== type) fail(`${what} is not an Ed25519 key of type 0x0${type}`);
    const h = await sha256(concat(utf8.encode(m[1] + '\n'), raw));
    const hash = ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
    if (hash !== parseInt(m[2], 16)) fail(`${what}: key hash does not match the key`);
    let key;
    try {
      key = await crypto.subtle.importKey('raw', raw.slice(1), { name: 'Ed25519' }, true, ['verify']);
    } catch (e) {
      fail(`this browser cannot check Ed25519 signatures (${e.message})`);
    }
    return { name: m[1], hash, key, text: vkey };
  }

  // parsePolicy parses a tlog-policy with the structure checks of Go's
  // merkle.ParsePolicy: names defined before use, members of one group at
  // most, thresholds in [1, n], no duplicate keys, one quorum line. An
  // "operator <vkey>" line (prov's policy files) is returned, not checked.
  async function parsePolicy(text) {
    if (typeof text !== 'string') fail('the policy is not text');
    if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text)) fail('the policy contains control characters');
    const p = { logs: [], witnesses: new Map(), groups: new Map(), quorum: null, operator: '' };
    const defined = new Set(['none']);
    const members = new Set();
    const keys = new Set();
    for (const [i, line] of text.split('\n').entries()) {
      const bad = (msg) => fail(`the policy, line ${i + 1}: ${msg}`);
      const f = line.split(/[ \t]+/).filter((s) => s !== '');
      if (f.length === 0 || f[0].startsWith('#')) continue;
      const newKey = (k) => { if (keys.has(k)) bad('duplicate key'); keys.add(k); };
      const newName = (n) => { if (defined.has(n)) bad(`name "${n}" is reserved or defined already`); defined.add(n); };
      if (f[0] === 'log') {
        if (f.length < 2 || f.length > 3) bad('want: log <vkey> [<url>]');
        newKey(f[1]);
        p.logs.push(await parseTypedKey(f[1], 1, `the policy, line ${i + 1}: the log key`));
      } else if (f[0] === 'witness') {
        if (f.length < 3 || f.length > 4) bad('want: witness <name> <vkey> [<url>]');
        newName(f[1]);
        newKey(f[2]);
        p.witnesses.set(f[1], await parseTypedKey(f[2], 4, `the policy, line ${i + 1}: the witness key`));
      } else if (f[0] === 'group') {
        if (f.length < 4) bad('want: group <name> <k|any|all> <member>...');
        const ms = f.slice(3);
        let k = f[2] === 'any' ? 1 : f[2] === 'all' ? ms.length : NaN;
        if (Number.isNaN(k)) {
          if (!/^-?(0|[1-9][0-9]*)$/.test(f[2])) bad(`threshold "${f[2]}" is not a decimal number, any or all`);
          k = Number(f[2]);
        }
        if (k < 1 || k > ms.length) bad(`threshold ${k} is not between 1 and ${ms.length}`);
        for (const m of ms) {
          if (m === 'none' || !defined.has(m)) bad(`member "${m}" is not defined on an earlier line`);
          if (members.has(m)) bad(`"${m}" is a member of a group already`);
          members.add(m);
        }
        newName(f[1]);
        p.groups.set(f[1], { k, members: ms });
      } else if (f[0] === 'quorum') {
        if (f.length !== 2) bad('want: quorum <name>');
        if (p.quorum !== null) bad('a second quorum line');
        if (!defined.has(f[1])) bad(`quorum "${f[1]}" is not defined on an earlier line`);
        p.quorum = f[1];
      } else if (f[0] === 'operator') {
        if (f.length !== 2 || p.operator) bad('want one "operator <vkey>" line');
        p.operator = f[1];
      } else {
        bad(`unknown keyword "${f[0]}"`);
      }
    }
    if (p.quorum === null) fail('the policy has no quorum line');
    return p;
  }

  // cosignedText is the message a cosignature/v1 signs: a header with the
  // big-endian timestamp, then the checkpoint note's text.
  const cosignedText = (time, text) => `cosignature/v1\ntime ${time}\n${text}`;

  // verifyCosignature checks one cosignature/v1 signature: timestamp[8]
  // then an Ed25519 signature[64] over cosignedText.
  async function verifyCosignature(wk, sig, text) {
    if (sig.length !== 72) return false;
    const time = new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0, false);
    return crypto.subtle.verify({ name: 'Ed25519' }, wk.key, sig.slice(8), utf8.encode(cosignedText(time, text)));
  }

  // quorumMet reports whether the witness or group `name` has cosigned:
  // `signed` holds the names of witnesses with a valid cosignature.
  function quorumMet(p, name, signed) {
    if (name === 'none') return true;
    if (p.witnesses.has(name)) return signed.has(name);
    const g = p.groups.get(name);
    return !!g && g.members.filter((m) => quorumMet(p, m, signed)).length >= g.k;
  }

  // verifyPolicy checks the checkpoint as Go's merkle.Policy.Verify does:
  // every signature by a key the policy knows must verify (others are
  // ignored), a policy log named as the origin must have signed, and the
  // valid witness cosignatures must meet the quorum.
  async function verifyPolicy(p, cpText) {
    const n = parseNote(utf8.encode(cpText), 'the checkpoint');
    const origin = n.text.slice(0, n.text.indexOf('\n'));
    const signed = new Set();
    let logOK = false;
    for (const s of n.sigs) {
      const log = p.logs.find((k) => k.name === s.name && k.hash === s.hash);
      if (log) {
        if (!(await ed25519Verify(log, s.sig, n.text))) fail(`the checkpoint signature by the policy's log key ${s.name} is invalid`);
        if (log.name === origin) logOK = true;
        continue;
      }
      for (const [wname, wk] of p.witnesses) {
        if (wk.name !== s.name || wk.hash !== s.hash) continue;
        if (!(await verifyCosignature(wk, s.sig, n.text))) fail(`the checkpoint cosignature by the witness ${wname} is invalid`);
        signed.add(wname);
      }
    }
    if (!logOK) fail(`the checkpoint for "${origin}" is not signed by a log the policy trusts`);
    if (!quorumMet(p, p.quorum, signed)) fail(`the checkpoint lacks the witness cosignatures the quorum ${p.quorum} needs`);
    return { quorum: p.quorum, witnesses: [...signed] };
  }

  // parseProof parses a C2SP tlog-proof@v1 in its canonical form: header,
  // "index N", one base64 hash per line, a blank line, the checkpoint.
  function parseProof(text) {
    if (typeof text !== 'string') fail('the proof is not text');
    const lines = text.split('\n');
    if (lines[0] !== PROOF_HEADER) fail('the proof is not a tlog-proof@v1');
    const m = /^index (0|[1-9][0-9]*)$/.exec(lines[1] || '');
    if (!m) fail('the proof has no valid index');
    const hashes = [];
    let i = 2;
    for (; i < lines.length && lines[i] !== ''; i++) {
      const h = b64decode(lines[i], 'a proof hash');
      if (h.length !== 32) fail('a proof hash is not 32 bytes');
      hashes.push(h);
    }
    if (i >= lines.length) fail('the proof has no checkpoint');
    return { index: BigInt(m[1]), hashes, checkpoint: lines.slice(i + 1).join('\n') };
  }

  // verifyInclusion is the RFC 9162 section 2.1.3.2 algorithm: recompute
  // the root from the leaf hash and its audit path. BigInt keeps 64-bit
  // indices exact.
  async function verifyInclusion(hash, index, size, path, root) {
    if (index >= size) return false;
    let fn = index;
    let sn = size - 1n;
    let r = hash;
    for (const p of path) {
      if (sn === 0n) return false;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n && equalBytes(r, root);
  }

  // ---- events --------------------------------------------------------------

  const GTIN_RE = /^[0-9]{14}$/;

  // GS1 mod-10 check digit of the digits before the last.
  function gtinValid(g) {
    if (!GTIN_RE.test(g)) return false;
    let sum = 0;
    for (let i = 0; i < 13; i++) sum += Number(g[12 - i]) * (i % 2 === 0 ? 3 : 1);
    return (10 - (sum % 10)) % 10 === Number(g[13]);
  }

  // An item id "01/{GTIN-14}/21/{serial}", serial in GS1 set 82, 1-20 chars.
  function itemValid(s) {
    const m = /^01\/([0-9]{14})\/21\/([A-Za-z0-9!"%&'()*+,\-./:;<=>?_]{1,20})$/.exec(s || '');
    return !!m && gtinValid(m[1]);
  }

  const actorIdValid = (id) => typeof id === 'string' && /^[a-z0-9][a-z0-9-]{2,63}$/.test(id);
  const TIME_RE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/;

  // parseEvent parses an event leaf without verifying its signature, with
  // the structural checks of provenance.ParseEvent: one signature named as
  // the actor, the header, one line of canonical JSON, the right payload.
  function parseEvent(leaf) {
    const n = parseNote(leaf, 'the event');
    if (n.sigs.length !== 1) fail(`the event has ${n.sigs.length} signatures, want 1`);
    const sig = n.sigs[0];
    const sigLine = `${SIG_PREFIX}${sig.name} ${sig.b64}\n`;
    if (utf8Strict.decode(leaf) !== `${n.text}\n${sigLine}`) fail('the event has more than its one signature line');
    if (sig.sig.length !== 64) fail('the event signature is not an Ed25519 signature');
    if (!n.text.startsWith(EVENT_HEADER + '\n')) fail(`the event does not start with ${EVENT_HEADER}`);
    const line = n.text.slice(EVENT_HEADER.length + 1, -1);
    if (line.includes('\n')) fail('the event is not one line of JSON');
    let e;
    try { e = JSON.parse(line); } catch { fail('the event is not JSON'); }
    if (canonicalJSON(e) !== line) fail('the event JSON is not in canonical form');
    checkEvent(e);
    if (sig.name !== e.actor) fail(`the event of "${e.actor}" is signed by "${sig.name}"`);
    return { event: e, text: n.text, sig };
  }

  // textReason says why s is not acceptable one-line free text of at most
  // max bytes, or '': provenance's textReason, word for word. No control
  // characters (C0, C1, line and paragraph separators), no bidi
  // embeddings, overrides or isolates, no zero-width characters (they let
  // text display as something else), no U+FFFD, no white space at either
  // end. Characters are named as U+XXXX, at their UTF-8 byte offset.
  function textReason(s, max) {
    if (typeof s !== 'string') return 'is not text';
    const n = utf8.encode(s).length;
    if (n > max) return `has ${n} bytes, at most ${max}`;
    let at = 0;
    for (const ch of s) {
      const r = ch.codePointAt(0);
      const u = `U+${r.toString(16).toUpperCase().padStart(4, '0')}`;
      if (r === 0xfffd || (r >= 0xd800 && r <= 0xdfff)) return `invalid UTF-8 or U+FFFD at byte ${at}`;
      if (r < 0x20 || r === 0x7f || (r >= 0x80 && r < 0xa0) || r === 0x2028 || r === 0x2029) return `control character ${u} at byte ${at}`;
      if ((r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)) return `bidi control character ${u} at byte ${at} (it reorders how text displays)`;
      if ((r >= 0x200b && r <= 0x200d) || r === 0x2060 || r === 0xfeff) return `zero-width character ${u} at byte ${at} (invisible)`;
      at += utf8.encode(ch).length;
    }
    if (s.trim() !== s) return 'starts or ends with white space';
    return '';
  }

  // checkText fails unless the free-text field holds acceptable text
  // (provenance's checkPayload): required fields are not empty.
  function checkText(field, s, max, required) {
    if (s === undefined && !required) return;
    if (required && s === '') fail(`${field}: is empty`);
    const reason = textReason(s, max);
    if (reason) fail(`${field}: ${reason}`);
  }

  // Limits on free-text fields, in bytes (provenance's MaxPlaceLen, ...).
  const MAX_PLACE = 64;
  const MAX_NAME = 100;
  const MAX_PRODUCT = 200;
  const MAX_TEXT = 500;

  // checkEvent checks the event fields the custody rules rely on, and
  // every free-text field.
  function checkEvent(e) {
    if (!ALL_KINDS.includes(e.kind)) fail(`unknown event kind "${e.kind}"`);
    if (!actorIdValid(e.actor)) fail(`"${e.actor}" is not a valid actor id`);
    if (!TIME_RE.test(e.time)) fail('the event time is not RFC 3339 UTC');
    checkText('place', e.place, MAX_PLACE, false);
    for (const k of ALL_KINDS) {
      if ((e[k] !== undefined) !== (k === e.kind)) fail(`a ${e.kind} event with a ${k} payload missing or extra`);
    }
    switch (e.kind) {
      case 'enroll': checkText('enroll.name', e.enroll.name, MAX_NAME, true); break;
      case 'revoke': checkText('revoke.reason', e.revoke.reason, MAX_TEXT, true); break;
      case 'register':
        checkText('register.product', e.register.product, MAX_PRODUCT, true);
        // A lot is GS1 AI 10: at most 20 characters of GS1 set 82.
        if (e.register.lot !== undefined && !/^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{0,20}$/.test(e.register.lot)) {
          fail('register.lot: not at most 20 characters of GS1 AI 10');
        }
        checkText('register.description', e.register.description, MAX_TEXT, false);
        break;
      case 'dispute': checkText('dispute.reason', e.dispute.reason, MAX_TEXT, true); break;
      case 'ruling': checkText('ruling.decision', e.ruling.decision, MAX_TEXT, true); break;
    }
    const itemEvent = ITEM_KINDS.includes(e.kind);
    if (itemEvent && !itemValid(e.item)) fail(`"${e.item}" is not a valid item id`);
    if (!itemEvent && e.item) fail(`a ${e.kind} event names an item`);
    if (itemEvent && e.kind !== 'register') {
      if (!e.prev || b64decode(e.prev, 'prev').length !== 32) fail('prev is not a leaf hash');
    } else if (e.prev) {
      fail(`a ${e.kind} event has a prev`);
    }
    if (e.actor === BUYER_ID && e.kind !== 'receive' && e.kind !== 'dispute') fail('a buyer may only receive or dispute');
    if (e.kind === 'handoff') {
      const h = e.handoff;
      const toMode = h.to && !h.claim && !h.salt;
      const claimMode = !h.to && h.claim && h.salt;
      if (!toMode && !claimMode) fail('a handoff must have either to, or claim and salt');
      if (toMode && h.to === e.actor) fail('an actor cannot hand off to itself');
      if (claimMode && b64decode(h.claim, 'handoff.claim').length !== 32) fail('handoff.claim is not a SHA-256 hash');
      if (claimMode) {
        const n = b64decode(h.salt, 'handoff.salt').length;
        if (n < 16 || n > 64) fail('handoff.salt must be 16 to 64 bytes');
      }
    }
    if (e.kind === 'receive') {
      const r = e.receive;
      const byMode = r.by && !r.claim_code && !r.buyer_key;
      const claimMode = !r.by && r.claim_code && r.buyer_key;
      if (!byMode && !claimMode) fail('a receive must have either by, or claim_code and buyer_key');
      if (byMode && (r.by !== e.actor || r.by === BUYER_ID)) fail('receive.by is not the signer');
      if (claimMode && e.actor !== BUYER_ID) fail('a receive with a claim code is signed by "buyer"');
    }
  }

  // ---- replay: signatures and custody rules ---------------------------------

  // A Replay is the state an in-order replay of the bundle's entries
  // builds: actors and their key windows, the one item, used claims.
  // It mirrors provenance.State.Apply for what a bundle can contain.
  class Replay {
    constructor(operator, itemId) {
      this.op = operator; // parsed pinned operator key
      this.itemId = itemId;
      this.actors = new Map(); // id -> {role, name, revoked, keys: [{vkey, hash, from, to, revoked, enrolled}]}
      this.item = null;
      this.claims = new Set();
      this.events = [];
    }

    // signerKey returns the role of the event's signer and the key that must
    // have signed it at this position (provenance.State.signerKey).
    async signerKey(e, sigHash) {
      if (OPERATOR_KINDS.includes(e.kind)) {
        if (e.actor !== this.op.name) fail(`${e.kind} events are signed by the operator "${this.op.name}", not "${e.actor}"`);
        return { role: 'operator', vk: this.op };
      }
      if (e.actor === this.op.name) fail(`the operator does not make ${e.kind} events`);
      if (e.actor === BUYER_ID) {
        if (e.kind === 'receive') return { role: 'buyer', vk: await parseVerifierKey(e.receive.buyer_key, 'the buyer key') };
        if (!this.item.buyerKey) fail('a buyer disputes, but no buyer has received this item');
        return { role: 'buyer', vk: await parseVerifierKey(this.item.buyerKey, 'the buyer key') };
      }
      const a = this.actors.get(e.actor);
      if (!a) fail(`"${e.actor}" is not enrolled`);
      const cur = a.keys[a.keys.length - 1];
      for (const w of a.keys) {
        if (w.revoked && w.hash === sigHash) fail(`the key of "${e.actor}" was revoked at log index ${w.to}`);
      }
      if (a.revoked) fail(`the key of "${e.actor}" was revoked at log index ${cur.to}`);
      if (e.kind === 'register' && a.role !== 'manufacturer') fail(`a ${a.role} may not register items`);
      if (e.kind === 'handoff' && !['manufacturer', 'courier', 'reseller'].includes(a.role)) fail(`a ${a.role} may not hand off items`);
      return { role: a.role, vk: await parseVerifierKey(cur.vkey, `the key of "${e.actor}"`) };
    }

    // apply checks one entry (already proven in the log) and updates the state.
    async apply(index, leaf, parsed) {
      const { event: e, text, sig } = parsed;
      if (ITEM_KINDS.includes(e.kind) && e.kind !== 'register' && !this.item) fail(`item ${e.item} is not registered before this ${e.kind}`);
      const { role, vk } = await this.signerKey(e, sig.hash);
      if (vk.name !== e.actor || vk.hash !== sig.hash) fail(`the ${e.kind} event is signed by another key than the one "${e.actor}" holds here`);
      if (!(await ed25519Verify(vk, sig.sig, text))) fail(`the signature of "${e.actor}" on the ${e.kind} event is invalid`);
      // Times (provenance.State.check): not before the enrollment of the
      // signing key, not before the item's previous event. Both are RFC
      // 3339 UTC to the second in one fixed layout, so they compare as
      // strings. Whether a time is in the future is the server's check
      // at submission only: it depends on a clock, not on the log.
      const a = e.actor !== this.op.name && e.actor !== BUYER_ID ? this.actors.get(e.actor) : null;
      if (a) {
        const cur = a.keys[a.keys.length - 1];
        if (e.time < cur.enrolled) {
          fail(`the ${e.kind} event's time ${e.time} is before the enrollment of the signing key at ${cur.enrolled} (log index ${cur.from})`);
        }
      }
      const lh = await leafHash(leaf);
      const rule = this[`on_${e.kind}`];
      if (ITEM_KINDS.includes(e.kind) && e.kind !== 'register') {
        if (e.prev !== b64encode(this.item.last)) fail(`the ${e.kind} event does not follow the item's previous event (prev chain broken)`);
        if (e.time < this.item.lastTime) {
          fail(`the ${e.kind} event's time ${e.time} is before the item's previous event at ${this.item.lastTime} (log index ${this.item.lastIndex})`);
        }
      }
      await rule.call(this, index, e, role);
      if (ITEM_KINDS.includes(e.kind)) {
        Object.assign(this.item, { last: lh, lastTime: e.time, lastIndex: index });
        this.events.push({ index: Number(index), kind: e.kind, actor: e.actor, role, time: e.time,
          place: e.place || '', leafHash: b64encode(lh), name: this.actors.get(e.actor)?.name || '' });
      }
    }

    async on_enroll(index, e) {
      const sub = e.enroll;
      if (sub.id === this.op.name || sub.id === BUYER_ID) fail(`"${sub.id}" cannot be enrolled`);
      const vk = await parseVerifierKey(sub.key, `the enrolled key of "${sub.id}"`);
      if (vk.name !== sub.id) fail(`the enrolled key of "${sub.id}" is named "${vk.name}"`);
      const old = this.actors.get(sub.id);
      if (old && !old.revoked) fail(`"${sub.id}" is enrolled already`);
      if (old && old.keys.some((w) => w.vkey === sub.key)) fail(`"${sub.id}" is re-enrolled with an old key`);
      const keys = old ? old.keys.slice() : [];
      keys.push({ vkey: sub.key, hash: vk.hash, from: index, to: 0n, revoked: false, enrolled: e.time });
      this.actors.set(sub.id, { role: sub.role, name: sub.name, revoked: false, keys });
    }

    on_revoke(index, e) {
      const a = this.actors.get(e.revoke.id);
      if (!a) fail(`revoke of "${e.revoke.id}", who is not enrolled`);
      if (a.revoked) fail(`"${e.revoke.id}" is revoked already`);
      a.revoked = true;
      Object.assign(a.keys[a.keys.length - 1], { to: index, revoked: true });
    }

    on_register(index, e) {
      if (this.item) fail(`${e.item} is registered twice`);
      this.item = { custodian: e.actor, status: 'in custody', pending: null, dispute: null,
        parties: new Set([e.actor]), buyerKey: '', product: e.register.product, last: null, lastTime: '', lastIndex: 0n };
    }

    on_handoff(index, e) {
      const it = this.item;
      if (it.status === 'disputed') fail('a handoff of a disputed item');
      if (it.status === 'delivered') fail('a handoff of an item already delivered');
      if (it.custodian !== e.actor) fail(`"${e.actor}" hands off, but "${it.custodian}" holds the item`);
      const h = e.handoff;
      if (h.to) {
        const to = this.actors.get(h.to);
        if (h.to === this.op.name || h.to === BUYER_ID) fail(`"${h.to}" cannot hold custody`);
        if (!to) fail(`handoff to "${h.to}", who is not enrolled`);
        if (to.revoked) fail(`handoff to "${h.to}", whose key is revoked`);
      } else if (this.claims.has(h.claim)) {
        fail('the handoff reuses a claim already used');
      }
      it.pending = { index, to: h.to || '', claim: h.claim || '', salt: h.salt || '' };
      it.status = 'in transit';
    }

    async on_receive(index, e, role) {
      const it = this.item;
      const p = it.pending;
      if (it.status === 'disputed') fail('a receive of a disputed item');
      if (!p) fail(`"${e.actor}" receives, but no handoff is pending`);
      const r = e.receive;
      if (r.by) {
        if (!p.to) fail('the handoff was to a buyer by claim code, not to a named receiver');
        if (p.to !== e.actor) fail(`the handoff was to "${p.to}", but "${e.actor}" received`);
      } else {
        if (p.to) fail(`the handoff was to "${p.to}", not by claim code`);
        // SHA-256(salt || code), as provenance.ClaimHash.
        const sum = b64encode(await sha256(concat(b64decode(p.salt, 'salt'), utf8.encode(r.claim_code))));
        if (this.claims.has(sum)) fail('the claim code was used already');
        if (sum !== p.claim) fail('the claim code does not match the handoff');
        this.claims.add(sum);
        it.buyerKey = r.buyer_key;
      }
      Object.assign(it, { custodian: e.actor, pending: null, status: role === 'buyer' ? 'delivered' : 'in custody' });
      it.parties.add(e.actor);
    }

    on_dispute(index, e) {
      const it = this.item;
      if (it.status === 'disputed') fail('a dispute of an item already disputed');
      if (!it.parties.has(e.actor)) fail(`"${e.actor}" disputes an item it never held`);
      it.dispute = { was: it.status };
      it.status = 'disputed';
    }

    on_ruling() {
      const it = this.item;
      if (it.status !== 'disputed') fail('a ruling on an item that is not disputed');
      it.status = it.dispute.was;
      it.dispute = null;
    }
  }

  // ---- the bundle -----------------------------------------------------------

  // canonicalBundle writes b as provenance.BuildBundle does (Go's
  // json.Encoder, two-space indent, no HTML escaping, final newline).
  function canonicalBundle(b) {
    const q = (v) => goString(typeof v === 'string' ? v : '');
    const entries = Array.isArray(b.entries) ? b.entries : [];
    const ent = entries.map((e) => [
      '    {',
      `      "index": ${Number.isSafeInteger(e && e.index) && e.index >= 0 ? e.index : '"?"'},`,
      `      "leaf": ${q(e && e.leaf)},`,
      `      "proof": ${q(e && e.proof)}`,
      '    }'].join('\n'));
    return ['{',
      `  "format": ${q(b.format)},`,
      `  "origin": ${q(b.origin)},`,
      `  "log_key": ${q(b.log_key)},`,
      `  "operator_key": ${q(b.operator_key)},`,
      `  "item": ${q(b.item)},`,
      `  "checkpoint": ${q(b.checkpoint)},`,
      entries.length ? `  "entries": [\n${ent.join(',\n')}\n  ]` : '  "entries": null',
      '}', ''].join('\n');
  }

  // parseBundle parses the bundle JSON and insists on its one byte form.
  function parseBundle(text) {
    if (typeof text !== 'string') fail('the bundle is not text');
    if (text.length > 16 << 20) fail('the bundle is too large');
    let b;
    try { b = JSON.parse(text); } catch { fail('the bundle is not JSON'); }
    if (b === null || typeof b !== 'object' || canonicalBundle(b) !== text) {
      fail('the bundle is not in its canonical form (it was altered or is not a provtrail bundle)');
    }
    if (b.format !== BUNDLE_FORMAT) fail(`the bundle format is "${b.format}", want ${BUNDLE_FORMAT}`);
    return b;
  }

  // verifyEntries checks each entry's proof against the checkpoint and
  // parses its event (steps 4 and 5 of docs/bundle.md).
  async function verifyEntries(b, cp) {
    const parsed = [];
    let prevIndex = -1n;
    for (const [i, en] of b.entries.entries()) {
      const where = `entry ${i} (log index ${en.index})`;
      try {
        const index = BigInt(en.index);
        if (index <= prevIndex) fail('its index is not after the previous entry');
        prevIndex = index;
        const p = parseProof(en.proof);
        if (p.index !== index) fail(`its proof is for log index ${p.index}`);
        if (p.checkpoint !== b.checkpoint) fail('its proof is against another checkpoint');
        const leaf = b64decode(en.leaf, 'the leaf');
        if (!(await verifyInclusion(await leafHash(leaf), index, cp.size, p.hashes, cp.root))) {
          fail('its inclusion proof does not lead to the checkpoint root');
        }
        const ev = parseEvent(leaf);
        if (ITEM_KINDS.includes(ev.event.kind) && ev.event.item !== b.item) fail(`it is an event of ${ev.event.item}, not of ${b.item}`);
        parsed.push({ index, leaf, ev });
      } catch (e) {
        if (e instanceof VerifyError) fail(`${where}: ${e.message}`);
        throw e;
      }
    }
    return parsed;
  }

  // reliedActors: every signer and named receiver of the item's events,
  // except the operator and buyers (provenance.BundleActors).
  function reliedActors(opName, itemEvents) {
    const ids = new Set();
    for (const e of itemEvents) {
      for (const id of [e.actor, e.handoff && e.handoff.to]) {
        if (id && id !== opName && id !== BUYER_ID) ids.add(id);
      }
    }
    return ids;
  }

  // policyTrust fills the pins the caller left empty from a policy file:
  // the operator key from its operator line, and the log key and origin
  // from its log line if it has exactly one.
  function policyTrust(trust, p) {
    const t = { ...trust };
    if (!t.operatorKey) t.operatorKey = p.operator;
    if (!t.logKey && p.logs.length === 1) t.logKey = p.logs[0].text;
    if (!t.origin && t.logKey) t.origin = t.logKey.split('+')[0];
    return t;
  }

  // verifyBundle is the whole check. It throws VerifyError with the reason.
  async function verifyBundle(text, trust) {
    const b = parseBundle(text);
    const policy = trust.policy ? await parsePolicy(trust.policy) : null;
    if (policy) trust = policyTrust(trust, policy);
    if (b.origin !== trust.origin) fail(`the bundle is for log "${b.origin}", not the pinned "${trust.origin}"`);
    if (b.log_key !== trust.logKey) fail('the bundle was made for another log key than the pinned one');
    if (b.operator_key !== trust.operatorKey) fail('the bundle was made for another operator key than the pinned one');
    const logKey = await parseVerifierKey(trust.logKey, 'the pinned log key');
    const op = await parseVerifierKey(trust.operatorKey, 'the pinned operator key');
    if (!actorIdValid(op.name) || op.name === BUYER_ID) fail('the pinned operator key name is not a usable actor id');
    const cp = await verifyCheckpoint(b.checkpoint, trust.origin, logKey);
    const witnessed = policy ? await verifyPolicy(policy, b.checkpoint) : null;
    if (!itemValid(b.item)) fail(`"${b.item}" is not a valid item id`);
    if (!Array.isArray(b.entries) || b.entries.length === 0) fail('the bundle has no entries');
    const parsed = await verifyEntries(b, cp);
    const itemEvents = parsed.map((p) => p.ev.event).filter((e) => ITEM_KINDS.includes(e.kind));
    if (itemEvents.length === 0 || itemEvents[0].kind !== 'register') fail(`the bundle has no register event of ${b.item}`);
    const relied = reliedActors(op.name, itemEvents);
    const st = new Replay(op, b.item);
    for (const [i, p] of parsed.entries()) {
      const e = p.ev.event;
      const subject = e.kind === 'enroll' ? e.enroll.id : e.kind === 'revoke' ? e.revoke.id : null;
      try {
        if (subject !== null && !relied.has(subject)) fail(`${e.kind} of "${subject}", whom no event of the item relies on`);
        await st.apply(p.index, p.leaf, p.ev);
      } catch (err) {
        if (err instanceof VerifyError) fail(`entry ${i} (log index ${p.index}): ${err.message}`);
        throw err;
      }
    }
    return {
      item: b.item, events: st.events, status: st.item.status, custodian: st.item.custodian,
      product: st.item.product, witnessed,
      checkpoint: { origin: cp.origin, size: Number(cp.size), root: b64encode(cp.root) },
    };
  }

  // provtrailVerify never throws: it returns {ok: true, ...} or
  // {ok: false, error} with the exact reason.
  async function provtrailVerify(bundleText, trust) {
    try {
      if (!globalThis.crypto || !crypto.subtle) fail('this browser has no WebCrypto (a secure https page is needed)');
      const r = await verifyBundle(bundleText, trust || {});
      return { ok: true, error: '', ...r };
    } catch (e) {
      const msg = e instanceof VerifyError ? e.message : `unexpected error: ${e && e.message}`;
      return { ok: false, events: [], error: msg };
    }
  }

  // ---- the page --------------------------------------------------------------

  // The page's language (data-lang on the verify box): the sentences a
  // buyer reads come in English and Simplified Chinese; the technical
  // reason after "Verification failed:" stays as verify.js words it.
  const WORDS = {
    en: {
      checking: 'Checking signatures and proofs on this phone…',
      failed: 'Verification failed: ',
      notThisItem: (got, want) => `the bundle is for ${got}, not for this item ${want}`,
      held: (who) => `held by ${who}`,
      delivered: 'delivered to its buyer',
      status: (st) => `the item is ${st}`,
      verified: (n, item, logName, size, quorum, where) =>
        `Verified on this phone: ${n} event${n === 1 ? '' : 's'} of ${item}, ` +
        `signatures and proofs check against the log key ${logName} ` +
        `(checkpoint of ${size} entries${quorum ? `, cosigned as the witness quorum ${quorum} needs` : ''}) ` +
        `and the operator key; ${where}.`,
    },
    zh: {
      checking: '正在本机校验签名和证明…',
      failed: '验证失败：',
      notThisItem: (got, want) => `证明包属于 ${got}，不是本物品 ${want}`,
      held: (who) => `现由 ${who} 保管`,
      delivered: '已交付给买家',
      status: (st) => `物品状态：${st}`,
      verified: (n, item, logName, size, quorum, where) =>
        `已在本机验证：${item} 的 ${n} 个事件，签名和证明均与日志公钥 ${logName}` +
        `（检查点共 ${size} 条${quorum ? `，并有见证方按法定人数 ${quorum} 共同签名` : ''}）及运营方公钥相符；${where}。`,
    },
  };

  function words(lang) {
    return WORDS[lang] || WORDS.en;
  }

  // summary is the plain sentence a buyer reads.
  function summary(r, trust, lang) {
    const w = words(lang);
    const logName = trust.logKey.split('+').slice(0, 2).join('+'); // name+hash, short enough to compare by eye
    let where = w.status(r.status);
    if (r.status === 'in custody') {
      // Name the custodian as its enrollment in the bundle does.
      const e = r.events.find((ev) => ev.actor === r.custodian && ev.name);
      where = w.held(e ? e.name : r.custodian);
    }
    if (r.status === 'delivered') where = w.delivered;
    return w.verified(r.events.length, r.item, logName, r.checkpoint.size, r.witnessed ? r.witnessed.quorum : '', where);
  }

  function show(out, ok, text) {
    out.textContent = text;
    out.dataset.verified = ok ? 'true' : 'false';
  }

  // onVerify fetches the bundle as plain bytes and checks it.
  async function onVerify(box, out, button) {
    const d = box.dataset;
    const trust = { origin: d.origin || '', logKey: d.logKey || '', operatorKey: d.operatorKey || '', policy: d.policy || '' };
    const w = words(d.lang);
    button.disabled = true;
    out.removeAttribute('data-verified');
    out.textContent = w.checking;
    try {
      let text;
      try {
        const resp = await fetch(d.bundleUrl, { credentials: 'omit', cache: 'no-store' });
        if (!resp.ok) fail(`could not download the proof bundle (HTTP ${resp.status})`);
        text = await resp.text();
      } catch (e) {
        if (e instanceof VerifyError) throw e;
        fail(`could not download the proof bundle (${e.message})`);
      }
      const r = await provtrailVerify(text, trust);
      if (r.ok && d.item && r.item !== d.item) {
        show(out, false, w.failed + w.notThisItem(r.item, d.item));
      } else if (r.ok) {
        show(out, true, summary(r, trust, d.lang));
      } else {
        show(out, false, w.failed + r.error);
      }
    } catch (e) {
      show(out, false, w.failed + e.message);
    } finally {
      button.disabled = false;
    }
  }

  function init() {
    for (const box of document.querySelectorAll('[data-testid=verify]')) {
      const button = box.querySelector('[data-testid=verify-button]');
      const out = box.querySelector('[data-testid=verify-result]') || document.querySelector('[data-testid=verify-result]');
      if (!button || !out) continue;
      button.hidden = false; // pages may hide the button until JavaScript runs
      button.addEventListener('click', (ev) => { ev.preventDefault(); onVerify(box, out, button); });
    }
  }

  window.provtrailVerify = provtrailVerify;
  window.provtrailVerifyLib = Object.freeze({
    parseVerifierKey, parseNote, parseProof, verifyInclusion, verifyCheckpoint, parseEvent,
    canonicalJSON, goString, leafHash, keyHash, b64encode, b64decode, itemValid,
    parsePolicy, verifyPolicy, textReason,
  });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
