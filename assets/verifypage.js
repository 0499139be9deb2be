// verifypage.js: the glue of the offline verifier page (GET /verify and
// its standalone HTML file). It reads a proof bundle from a file (input or
// drag and drop), from pasted text, or once from ?bundle= on this origin,
// and checks it with window.provtrailVerify (verify.js) against the keys in
// the form, and the witness policy pasted in it, if any. Nothing here touches the network after the page loaded, except
// the optional ?bundle fetch.
//
// It also re-checks label signatures (GS1 AI 8030) shown on history pages:
// [data-testid=label-check] with data-text, data-signature and data-key.
//
// A classic script, safe under a strict CSP: no eval, no inline handlers,
// output only through textContent.
(() => {
  'use strict';

  const $ = (root, id) => root.querySelector(`[data-testid=${id}]`);
  const fmt = (s, ...args) => {
    let i = 0;
    return s.replace(/%(?:\[(\d+)\])?[ds]/g, (_, n) => String(args[n ? Number(n) - 1 : i++]));
  };

  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function initVerifier(form) {
    const d = form.dataset;
    const out = $(form, 'verify-outcome');
    const text = $(form, 'bundle-text');
    const file = $(form, 'bundle-file');
    const drop = $(form, 'drop-zone');
    const button = $(form, 'verify-bundle');
    const section = $(document, 'verified-history');

    const show = (ok, msg) => {
      out.textContent = msg;
      out.dataset.verified = ok ? 'true' : 'false';
    };

    function render(r) {
      const facts = $(section, 'verified-facts');
      const events = $(section, 'verified-events');
      const actors = $(section, 'verified-actors');
      facts.replaceChildren();
      events.replaceChildren();
      actors.replaceChildren();
      const fact = (label, value, id) => {
        const div = el('div');
        div.append(el('dt', label), el('dd', value, id ? { 'data-testid': id } : {}));
        facts.append(div);
      };
      fact(d.msgProduct, r.product || '', 'verified-product');
      fact(d.msgStatus, r.status + (r.custodian ? ` (${r.custodian})` : ''), 'verified-status');
      fact(d.msgCheckpoint, `${r.checkpoint.origin}, ${r.checkpoint.size}, ${r.checkpoint.root}`);
      const seen = new Map();
      for (const e of r.events) {
        const li = el('li', undefined, { class: `event event-${e.kind}`, 'data-testid': 'verified-event', 'data-kind': e.kind, 'data-index': String(e.index) });
        const who = e.role === 'buyer' ? 'buyer' : (e.name ? `${e.name} (${e.actor})` : e.actor);
        li.append(el('p', `${e.kind} · ${who}`, { class: 'what' }));
        li.append(el('p', `${e.time}${e.place ? ' · ' + e.place : ''} · #${e.index}`, { class: 'when' }));
        events.append(li);
        if (!seen.has(e.actor)) seen.set(e.actor, e);
      }
      for (const [id, e] of seen) {
        actors.append(el('li', `${e.name || id} — ${id}, ${e.role}`, { 'data-testid': 'verified-actor', 'data-actor': id }));
      }
      section.hidden = false;
    }

    async function check() {
      const trust = {
        origin: $(form, 'origin').value.trim(),
        logKey: $(form, 'log-key').value.trim(),
        operatorKey: $(form, 'operator-key').value.trim(),
        // Optional witness policy (tlog-policy text); empty: no quorum.
        policy: $(form, 'verify-policy') ? $(form, 'verify-policy').value : '',
      };
      section.hidden = true;
      out.removeAttribute('data-verified');
      out.textContent = d.msgChecking;
      button.disabled = true;
      try {
        const r = await window.provtrailVerify(text.value, trust);
        if (r.ok) {
          render(r);
          show(true, `${d.msgOk}: ${fmt(d.msgEvents, r.events.length, r.item)}`);
        } else {
          show(false, `${d.msgFail}: ${r.error}`);
        }
      } finally {
        button.disabled = false;
      }
    }

    // A bundle is read as text exactly as it is: the check insists on its
    // one byte form, so nothing may trim or re-encode it.
    async function load(f) {
      if (!f) return;
      try {
        text.value = await f.text();
      } catch (e) {
        show(false, `${d.msgLoad}: ${e.message}`);
        return;
      }
      await check();
    }

    form.addEventListener('submit', (ev) => { ev.preventDefault(); check(); });
    file.addEventListener('change', () => load(file.files[0]));
    for (const t of [drop, form]) {
      t.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('dragging'); });
      t.addEventListener('dragleave', () => drop.classList.remove('dragging'));
    }
    form.addEventListener('drop', (ev) => {
      ev.preventDefault();
      drop.classList.remove('dragging');
      const f = ev.dataTransfer && ev.dataTransfer.files[0];
      load(f);
    });

    if (d.bundleUrl) {
      (async () => {
        try {
          const resp = await fetch(d.bundleUrl, { credentials: 'same-origin', cache: 'no-store' });
          if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
          text.value = await resp.text();
        } catch (e) {
          show(false, `${d.msgLoad}: ${e.message}`);
          return;
        }
        await check();
      })();
    }
  }

  // ---- label signatures (GS1 AI 8030) --------------------------------------

  // The 8030 value is the unpadded base64url Ed25519 signature of a C2SP
  // note over data-text; the note's key hash is the key's own.
  async function recheckLabel(box) {
    const out = $(box, 'label-recheck');
    if (!out || !window.provtrailVerifyLib) return;
    const lib = window.provtrailVerifyLib;
    let ok = false;
    try {
      const vk = await lib.parseVerifierKey(box.dataset.key, 'the manufacturer key');
      const sig64 = box.dataset.signature.replace(/-/g, '+').replace(/_/g, '/');
      const sig = lib.b64decode(sig64 + '=='.slice(0, (4 - sig64.length % 4) % 4), 'the label signature');
      ok = sig.length === 64 &&
        await crypto.subtle.verify({ name: 'Ed25519' }, vk.key, sig, new TextEncoder().encode(box.dataset.text));
    } catch {
      ok = false;
    }
    out.textContent = ok ? out.dataset.msgOk : out.dataset.msgBad;
    out.dataset.verified = ok ? 'true' : 'false';
  }

  function init() {
    const form = $(document, 'verifier');
    if (form) initVerifier(form);
    for (const box of document.querySelectorAll('[data-testid=label-check][data-key]')) recheckLabel(box);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
