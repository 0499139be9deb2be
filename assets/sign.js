// sign.js: the phone's signer. An actor's Ed25519 key is made once with
// WebCrypto as a NON-extractable key and kept in IndexedDB (CryptoKey
// objects are structured-cloneable, so the key pair itself is stored: the
// private key never exists as bytes this page or any script could read).
// The forms build events in exactly the byte form the server accepts (the
// canonical JSON Go's encoder writes for provenance's wireEvent), sign them
// as C2SP signed notes, and POST them to /api/v1/events.
//
// DOM contract (every part optional; pages work without this file):
//   enroll:  [data-testid=enroll-form] (or a form inside [data-testid=enroll])
//            with input name="id" (or name="actor-id"): makes or re-labels
//            the key; [data-testid=enroll-key] shows the verifier key
//            "<id>+<hex keyhash>+<base64(0x01||pub)>" for `prov enroll --key`.
//   forms:   [data-testid=handoff-form]  fields item, prev, to | claim (checkbox), place
//            [data-testid=receive-form]  fields item, prev, place
//            [data-testid=claim-form]    fields item, prev, claim (or claim-code): buyer's receive
//            [data-testid=dispute-form]  fields item, prev, reason
//            [data-testid=register-form] fields gtin, product, lot, description, place,
//                                        count; optional [data-testid=register-progress]
//   Each form shows its outcome in its own output[data-testid$=-result], else in
//   [data-testid=sign-result], with data-ok="true|false" (and data-index).
//   The claim code of a handoff by claim is shown in [data-testid=claim-code].
//   item may be "01/{gtin}/21/{serial}" or a GS1 Digital Link; the form
//   may instead carry data-item. prev is fetched fresh from
//   GET /api/v1/items/{gtin}/{serial}, falling back to the form's prev field.
//
// API: window.provtrailSign (see the end of this file).
(() => {
  'use strict';

  const EVENT_HEADER = 'provtrail-event/v1';
  const BUYER_ID = 'buyer';
  const DB_NAME = 'provtrail-signer';
  const DB_STORE = 'keys';
  const SIGNER_RECORD = 'signer'; // {keyPair, actorId}
  const buyerRecord = (item) => `buyer:${item}`; // a buyer's one-off key, per item
  // Crockford base32, as provenance.NewSerial and NewClaim use.
  const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  const ACTOR_ID_RE = /^[a-z0-9][a-z0-9-]{2,63}$/;

  const utf8 = new TextEncoder();

  // ---- bytes ----------------------------------------------------------------

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) { out.set(p, off); off += p.length; }
    return out;
  }

  function b64encode(bytes) {
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }

  function b64decode(s) {
    const bin = atob(s);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  const randomBytes = (n) => crypto.getRandomValues(new Uint8Array(n));

  // base32 of bytes in the given alphabet, no padding (Go's
  // base32.NewEncoding(alphabet).WithPadding(NoPadding)).
  function base32(bytes, alphabet) {
    let out = '';
    let bits = 0;
    let value = 0;
    for (const b of bytes) {
      value = (value << 8) | b;
      bits += 8;
      while (bits >= 5) {
        out += alphabet[(value >>> (bits - 5)) & 31];
        bits -= 5;
      }
      value &= (1 << bits) - 1; // keep only the bits not yet written
    }
    if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
    return out;
  }

  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));

  // ---- canonical event JSON (Go's encoding/json for provenance.wireEvent) ---

  // Go escapes what JSON.stringify escapes, and U+2028/U+2029 too; with
  // SetEscapeHTML(false), <, > and & stay as they are.
  const goString = (s) => JSON.stringify(s).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

  // Struct field order of wireEvent and its payloads; "?" is omitempty.
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

  // canonicalJSON writes obj compactly with fields in struct order and
  // empty omitempty fields left out: the only form the server accepts.
  function canonicalJSON(obj, type = 'event') {
    const parts = [];
    for (const [name, spec] of SCHEMA[type]) {
      const optional = spec.endsWith('?');
      const kind = optional ? spec.slice(0, -1) : spec;
      const v = obj[name];
      if (kind === 's') {
        if (optional && !v) continue;
        parts.push(`"${name}":${goString(String(v ?? ''))}`);
      } else if (kind === 'strings') {
        if (v && v.length) parts.push(`"${name}":[${v.map((x) => goString(String(x))).join(',')}]`);
      } else if (v) {
        parts.push(`"${name}":${canonicalJSON(v, kind)}`);
      }
    }
    return `{${parts.join(',')}}`;
  }

  // nowUTC is the event time: RFC 3339, UTC, whole seconds.
  const nowUTC = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

  // ---- keys and signed notes ------------------------------------------------

  // keyHash: first 4 bytes of SHA-256(name || "\n" || 0x01 || pub).
  async function keyHashBytes(name, pub) {
    return (await sha256(concat(utf8.encode(name + '\n'), Uint8Array.of(1), pub))).slice(0, 4);
  }

  // verifierKey returns the signed-note verifier key of a public key:
  // "<name>+<hex keyhash>+<base64(0x01||pub)>".
  async function verifierKey(name, publicKey) {
    const pub = new Uint8Array(await crypto.subtle.exportKey('raw', publicKey));
    const hash = await keyHashBytes(name, pub);
    const hex = Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('');
    return `${name}+${hex}+${b64encode(concat(Uint8Array.of(1), pub))}`;
  }

  // newKeyPair makes an Ed25519 key pair whose private key cannot be
  // exported (the public key of a pair is always exportable).
  function newKeyPair() {
    return crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  }

  // signNote signs text (which ends in "\n") as a C2SP signed note with
  // one signature line: "— <name> <base64(keyhash || signature)>".
  async function signNote(text, name, keyPair) {
    const pub = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
    const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, keyPair.privateKey, utf8.encode(text)));
    const blob = concat(await keyHashBytes(name, pub), sig);
    return `${text}\n\u2014 ${name} ${b64encode(blob)}\n`;
  }

  // signEvent writes the event note: header, canonical JSON line, signature.
  function signEvent(event, keyPair) {
    const text = `${EVENT_HEADER}\n${canonicalJSON(event)}\n`;
    return signNote(text, event.actor, keyPair);
  }

  // ---- IndexedDB ------------------------------------------------------------

  function idb(mode, fn) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open(DB_NAME, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(DB_STORE);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result;
        const tx = db.transaction(DB_STORE, mode);
        const req = fn(tx.objectStore(DB_STORE));
        tx.oncomplete = () => { db.close(); resolve(req.result); };
        tx.onerror = tx.onabort = () => { db.close(); reject(tx.error); };
      };
    });
  }
  const idbGet = (key) => idb('readonly', (s) => s.get(key));
  const idbPut = (key, value) => idb('readwrite', (s) => s.put(value, key));

  // loadSigner returns the stored {keyPair, actorId}, or undefined.
  const loadSigner = () => idbGet(SIGNER_RECORD);

  // ensureSigner makes the key on first use and labels it with actorId.
  // The key pair is kept when the id changes: only its name (and so its
  // verifier key string) changes.
  async function ensureSigner(actorId) {
    if (!ACTOR_ID_RE.test(actorId) || actorId === BUYER_ID || actorId === 'operator') {
      throw new Error('an actor id is 3 to 64 characters of a-z, 0-9 and "-", and not "buyer" or "operator"');
    }
    const old = await loadSigner();
    const rec = { keyPair: old ? old.keyPair : await newKeyPair(), actorId };
    await idbPut(SIGNER_RECORD, rec);
    return { ...rec, vkey: await verifierKey(actorId, rec.keyPair.publicKey) };
  }

  async function requireSigner() {
    const s = await loadSigner();
    if (!s) throw new Error('make your key first ("Your key" section) and ask the operator to enroll it');
    return s;
  }

  // ---- items, claims, serials -----------------------------------------------

  // GS1 check digit of a 14-digit GTIN.
  function gtinValid(g) {
    let sum = 0;
    for (let i = 0; i < 13; i++) sum += Number(g[12 - i]) * (i % 2 === 0 ? 3 : 1);
    return (10 - (sum % 10)) % 10 === Number(g[13]);
  }

  // normGTIN pads a GTIN-8, -12 or -13 to 14 digits and checks it.
  function normGTIN(s) {
    const g = String(s).trim();
    if (!/^([0-9]{8}|[0-9]{12,14})$/.test(g)) throw new Error(`GTIN "${g}" must have 8, 12, 13 or 14 digits`);
    const g14 = g.padStart(14, '0');
    if (!gtinValid(g14)) throw new Error(`GTIN ${g} has a wrong check digit`);
    return g14;
  }

  // parseItem reads "01/{gtin}/21/{serial}" or a Digital Link URI (its path
  // "/01/{gtin}/21/{serial}", serial percent-decoded once) into {gtin, serial, id}.
  function parseItem(s) {
    let str = String(s || '').trim();
    if (/^https?:\/\//i.test(str)) str = new URL(str).pathname;
    const m = /^\/?(?:.*\/)?01\/([0-9]{8,14})\/21\/([^/?#]+)$/.exec(str);
    if (!m) throw new Error(`"${s}" is not an item code (01/{GTIN}/21/{serial})`);
    const gtin = normGTIN(m[1]);
    const serial = str.startsWith('01/') ? m[2] : decodeURIComponent(m[2]);
    if (!/^[A-Za-z0-9!"%&'()*+,\-./:;<=>?_]{1,20}$/.test(serial)) throw new Error(`serial "${serial}" is not a GS1 serial`);
    return { gtin, serial, id: `01/${gtin}/21/${serial}` };
  }

  // newSerial is provenance.NewSerial: 80 random bits, 16 Crockford chars.
  const newSerial = () => base32(randomBytes(10), CROCKFORD);

  // newClaim is provenance.NewClaim: a 20-character code from 96 random
  // bits, a 16-byte salt, and claim = base64(SHA-256(salt || code)).
  async function newClaim() {
    const code = base32(randomBytes(12), CROCKFORD).slice(0, 20);
    const salt = randomBytes(16);
    const claim = await sha256(concat(salt, utf8.encode(code)));
    return { code, handoff: { claim: b64encode(claim), salt: b64encode(salt) } };
  }

  // normClaimCode tidies a typed claim code: no spaces, capitals (codes are
  // Crockford base32, which is written in capitals).
  const normClaimCode = (s) => String(s || '').replace(/\s+/g, '').toUpperCase();

  // ---- the server -----------------------------------------------------------

  // fetchPrev asks the server for the item's latest leaf hash. The answer
  // needs no trust: a wrong prev only gets the event refused. Assumed
  // response: JSON with "prev" (or "last"/"head") = base64 leaf hash.
  async function fetchPrev(item, fallback) {
    try {
      const url = `/api/v1/items/${item.gtin}/${encodeURIComponent(item.serial)}`;
      const resp = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (resp.ok) {
        const j = await resp.json();
        const prev = j.prev || j.last || j.head || (j.state && (j.state.last || j.state.prev));
        if (typeof prev === 'string' && prev) return prev;
      }
    } catch {
      // fall back to the page's value below
    }
    if (fallback) return fallback;
    throw new Error('could not learn the item\'s latest event from the server; reload the page');
  }

  // postEvent submits a signed event note and returns {ok, index, message}.
  async function postEvent(note) {
    let resp;
    try {
      resp = await fetch('/api/v1/events', {
        method: 'POST', body: note, credentials: 'same-origin',
        headers: { 'Content-Type': 'text/plain; charset=utf-8', Accept: 'application/json' },
      });
    } catch (e) {
      return { ok: false, message: `the server could not be reached (${e.message})` };
    }
    let j = {};
    try { j = await resp.json(); } catch { /* not JSON: use the status */ }
    if (!resp.ok) {
      const err = j.error;
      const message = (err && (err.message || (typeof err === 'string' && err))) || j.message || `HTTP ${resp.status}`;
      return { ok: false, message };
    }
    const index = j.index ?? j.Index ?? (j.receipt && j.receipt.index);
    return { ok: true, index, duplicate: !!j.duplicate, response: j };
  }

  // postBatch submits signed event notes in one request (at most 1,000) and
  // returns {ok, results, message}: results[i] is what postEvent would have
  // said of notes[i]; ok false with a message if the batch as a whole was
  // not taken.
  async function postBatch(notes) {
    let resp;
    try {
      resp = await fetch('/api/v1/events/batch', {
        method: 'POST', body: JSON.stringify({ events: notes }), credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      });
    } catch (e) {
      return { ok: false, message: `the server could not be reached (${e.message})` };
    }
    let j = {};
    try { j = await resp.json(); } catch { /* not JSON: use the status */ }
    if (!resp.ok || !Array.isArray(j.results) || j.results.length !== notes.length) {
      const err = j.error;
      return { ok: false, message: (err && err.message) || `HTTP ${resp.status}` };
    }
    const results = j.results.map((r) => (r.receipt && (r.status === 200 || r.status === 201)
      ? { ok: true, index: r.receipt.index, duplicate: !!r.receipt.duplicate }
      : { ok: false, message: (r.error && r.error.message) || `HTTP ${r.status}` }));
    return { ok: true, results };
  }

  // ---- building events ------------------------------------------------------

  function itemEvent(kind, actor, item, prev, place, payload) {
    return { kind, actor, time: nowUTC(), place: place || '', item: item.id, prev: prev || '', [kind]: payload };
  }

  const field = (form, ...names) => {
    for (const n of names) {
      const el = form.elements.namedItem(n);
      if (el && 'value' in el) return el;
    }
    return null;
  };
  const value = (form, ...names) => (field(form, ...names)?.value || '').trim();
  // text is a free-text field (reason, product, place): line breaks and
  // other white space runs become one space, and what the server refuses
  // in event text (control characters, bidi controls, zero-width
  // characters) is refused here, before anything is signed, naming the
  // character as the server would.
  const text = (form, name) => {
    const v = value(form, name).replace(/\s+/g, ' ');
    const bad = v.match(/[\u0000-\u001f\u007f-\u009f\ufffd\u202a-\u202e\u2066-\u2069\u200b-\u200d\u2060\ufeff]/);
    if (bad) {
      const u = `U+${bad[0].codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
      throw new Error(`${name} contains the character ${u}, which event text may not hold`);
    }
    return v;
  };

  function formItem(form) {
    const raw = value(form, 'item') || form.dataset.item || form.closest('[data-item]')?.dataset.item || '';
    return parseItem(raw);
  }

  // ---- form handlers: each returns {ok, text, index?, extra?} ----------------

  const handlers = {
    async handoff(form) {
      const s = await requireSigner();
      const item = formItem(form);
      const prev = await fetchPrev(item, value(form, 'prev'));
      const claimBox = field(form, 'claim');
      let payload;
      let code = '';
      if (claimBox && claimBox.checked) {
        const c = await newClaim();
        code = c.code;
        payload = c.handoff;
      } else {
        const to = value(form, 'to');
        if (!ACTOR_ID_RE.test(to)) throw new Error('enter the receiver\'s actor id, or tick "to a buyer (claim code)"');
        payload = { to };
      }
      const note = await signEvent(itemEvent('handoff', s.actorId, item, prev, text(form, 'place'), payload), s.keyPair);
      const r = await postEvent(note);
      if (r.ok && code) r.claimCode = code;
      return r;
    },

    async receive(form) {
      const s = await requireSigner();
      const item = formItem(form);
      const prev = await fetchPrev(item, value(form, 'prev'));
      const ev = itemEvent('receive', s.actorId, item, prev, text(form, 'place'), { by: s.actorId });
      return postEvent(await signEvent(ev, s.keyPair));
    },

    // claim: the buyer's receive, signed by a one-off key made here and
    // kept for this item so that the buyer can dispute later.
    async claim(form) {
      const code = normClaimCode(value(form, 'claim-code', 'claim_code', 'claim'));
      if (code.length < 8 || code.length > 64) throw new Error('enter the claim code you were given');
      const item = formItem(form);
      const prev = await fetchPrev(item, value(form, 'prev'));
      const keyPair = await newKeyPair();
      const buyerKey = await verifierKey(BUYER_ID, keyPair.publicKey);
      const ev = itemEvent('receive', BUYER_ID, item, prev, text(form, 'place'), { claim_code: code, buyer_key: buyerKey });
      const r = await postEvent(await signEvent(ev, keyPair));
      if (r.ok) await idbPut(buyerRecord(item.id), { keyPair, vkey: buyerKey });
      return r;
    },

    // dispute: signed with this phone's buyer key for the item if it has
    // one (the buyer who received it), else with the actor's key.
    async dispute(form) {
      const item = formItem(form);
      const reason = text(form, 'reason');
      if (!reason) throw new Error('say what is wrong');
      const buyer = await idbGet(buyerRecord(item.id));
      const s = buyer ? { actorId: BUYER_ID, keyPair: buyer.keyPair } : await requireSigner();
      const prev = await fetchPrev(item, value(form, 'prev'));
      const ev = itemEvent('dispute', s.actorId, item, prev, text(form, 'place'), { reason });
      return postEvent(await signEvent(ev, s.keyPair));
    },

    // register: count items with fresh random serials, a few requests in
    // flight at a time, with progress.
    async register(form, out) {
      const s = await requireSigner();
      const gtin = normGTIN(value(form, 'gtin'));
      const product = text(form, 'product');
      if (!product) throw new Error('enter the product name');
      const count = Number(value(form, 'count') || '1');
      if (!Number.isInteger(count) || count < 1 || count > 10000) throw new Error('count must be 1 to 10000');
      const payload = { product, lot: value(form, 'lot'), description: text(form, 'description') };
      const place = text(form, 'place');
      const progress = form.querySelector('[data-testid=register-progress]') || document.querySelector('[data-testid=register-progress]');
      if (progress) { progress.max = count; progress.value = 0; }
      const done = [];
      const failed = [];
      // Items go BATCH at a time, one request each (POST
      // /api/v1/events/batch), two requests in flight.
      const BATCH = 100;
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const n = Math.min(BATCH, count - next);
          next += n;
          const items = [];
          const notes = [];
          for (let i = 0; i < n; i++) {
            const serial = newSerial();
            const item = { gtin, serial, id: `01/${gtin}/21/${serial}` };
            const ev = { kind: 'register', actor: s.actorId, time: nowUTC(), place, item: item.id, register: payload };
            items.push(item);
            notes.push(await signEvent(ev, s.keyPair));
          }
          const r = await postBatch(notes);
          items.forEach((item, i) => {
            const ri = r.ok ? r.results[i] : { ok: false, message: r.message };
            (ri.ok ? done : failed).push({ item: item.id, ...ri });
          });
          if (progress) progress.value = done.length + failed.length;
          out.textContent = words().registering(done.length + failed.length, count);
          if (failed.length > 0 && done.length === 0) break; // the same refusal each time: stop
        }
      };
      await Promise.all(Array.from({ length: Math.min(2, Math.ceil(count / BATCH)) }, worker));
      const base = form.dataset.baseUrl || '';
      return {
        ok: failed.length === 0,
        message: failed.length ? failed[0].message : '',
        text: words().registered(done.length, count) + (failed.length ? words().refusedAfter(failed[0].message) : '.'),
        items: done.map((d) => (base ? `${base}/${d.item}` : d.item)),
      };
    },
  };

  // The sentences a user reads, in the page's language (<html lang>);
  // messages from the server are shown as they come.
  const WORDS = {
    en: {
      signing: 'Signing on this phone…',
      accepted: (i, dup) => `Accepted and logged at index ${i}${dup ? ' (it was logged already)' : ''}.`,
      refused: (m) => `Refused: ${m}`,
      claimCode: ' Give the buyer this claim code: ',
      registering: (n, of) => `Registering… ${n} of ${of}`,
      registered: (n, of) => `Registered ${n} of ${of} items`,
      refusedAfter: (m) => `; refused: ${m}`,
    },
    zh: {
      signing: '正在本机签名…',
      accepted: (i, dup) => `已接受，记录在日志第 ${i} 条${dup ? '（此前已记录）' : ''}。`,
      refused: (m) => `被拒绝：${m}`,
      claimCode: ' 请把这个领取码交给买家：',
      registering: (n, of) => `正在登记… ${n} / ${of}`,
      registered: (n, of) => `已登记 ${n} / ${of} 件物品`,
      refusedAfter: (m) => `；被拒绝：${m}`,
    },
  };

  function words() {
    return (document.documentElement.lang || '').startsWith('zh') ? WORDS.zh : WORDS.en;
  }

  // Which handler a form uses, by its data-testid.
  const FORMS = {
    'handoff-form': 'handoff', 'receive-form': 'receive', 'claim-form': 'claim',
    'dispute-form': 'dispute', 'register-form': 'register',
  };

  function resultBox(form) {
    return form.querySelector('output[data-testid$="-result"], [data-testid=sign-result]') ||
      document.querySelector('[data-testid=sign-result]');
  }

  // show writes the outcome as text (never HTML: messages come from the
  // server and from what users typed).
  function show(out, r) {
    out.replaceChildren();
    out.dataset.ok = r.ok ? 'true' : 'false';
    if (r.index !== undefined && r.index !== null) out.dataset.index = String(r.index);
    else delete out.dataset.index;
    const p = document.createElement('span');
    p.textContent = r.text || (r.ok ? words().accepted(r.index, r.duplicate) : words().refused(r.message));
    out.append(p);
    if (r.claimCode) {
      const label = document.createElement('span');
      label.textContent = words().claimCode;
      const code = document.createElement('code');
      code.dataset.testid = 'claim-code';
      code.textContent = r.claimCode;
      out.append(label, code);
    }
    if (r.items && r.items.length) {
      const list = document.createElement('ul');
      list.dataset.testid = 'registered-items';
      for (const it of r.items) {
        const li = document.createElement('li');
        li.textContent = it;
        list.append(li);
      }
      out.append(list);
    }
  }

  async function onSubmit(form, kind, ev) {
    ev.preventDefault();
    const out = resultBox(form);
    if (!out) return;
    const button = form.querySelector('button[type=submit], button:not([type])');
    if (button) button.disabled = true;
    delete out.dataset.ok;
    out.textContent = words().signing;
    try {
      show(out, await handlers[kind](form, out));
    } catch (e) {
      show(out, { ok: false, message: e.message });
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- enroll section -------------------------------------------------------

  function enrollParts() {
    const section = document.querySelector('[data-testid=enroll]');
    const form = document.querySelector('[data-testid=enroll-form]') || section?.querySelector('form');
    const out = document.querySelector('[data-testid=enroll-key]');
    return { form, out };
  }

  async function showStoredKey(form, out) {
    const s = await loadSigner();
    if (!s) return;
    const input = form && field(form, 'id', 'actor-id');
    if (input && !input.value) input.value = s.actorId;
    out.textContent = await verifierKey(s.actorId, s.keyPair.publicKey);
  }

  function initEnroll() {
    const { form, out } = enrollParts();
    if (!out) return;
    showStoredKey(form, out).catch((e) => { out.textContent = `Your key could not be read: ${e.message}`; });
    if (!form) return;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const s = await ensureSigner(value(form, 'id', 'actor-id'));
        out.textContent = s.vkey;
        out.dataset.ok = 'true';
      } catch (e) {
        out.textContent = `Could not make the key: ${e.message}`;
        out.dataset.ok = 'false';
      }
    });
  }

  function init() {
    if (!globalThis.crypto || !crypto.subtle || !globalThis.indexedDB) return; // the pages still work without
    initEnroll();
    for (const [testid, kind] of Object.entries(FORMS)) {
      for (const form of document.querySelectorAll(`form[data-testid=${testid}]`)) {
        form.addEventListener('submit', (ev) => onSubmit(form, kind, ev));
      }
    }
  }

  window.provtrailSign = Object.freeze({
    loadSigner, ensureSigner, verifierKey, signEvent, signNote, canonicalJSON,
    newClaim, newSerial, parseItem, postEvent,
  });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
