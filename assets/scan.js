// scan.js: the camera scanner on the courier page. It reads an item's QR
// code (a GS1 Digital Link) and opens /courier?item=<path> for it.
//
// Three ways to read a code, best first:
//   1. the camera with the browser's BarcodeDetector (Android Chrome, Safari);
//   2. the camera with the vendored jsQR decoder (assets/vendor/jsqr,
//      Apache-2.0), loaded only when needed;
//   3. a photo chosen with [data-testid=scan-upload], decoded via a canvas
//      (for browsers that refuse the camera, e.g. inside some in-app browsers).
//
// DOM contract (the page works without this file: a manual form is there):
//   [data-testid=scanner]        the section; gets a "Start camera" button
//                                [data-testid=scan-start] and a status line
//                                [data-testid=scan-result] if it has none
//   [data-testid=scanner-video]  <video> for the camera preview
//   [data-testid=scan-upload]    <input type=file accept=image/*>
//
// API: window.provtrailScan = {decodeImageFile, digitalLinkPath}.
(() => {
  'use strict';

  // Where this script was loaded from, to find the vendored decoder next
  // to it (document.currentScript exists only while a classic script runs).
  const SCRIPT_URL = document.currentScript ? document.currentScript.src : location.href;
  const JSQR_URL = new URL('vendor/jsqr/jsQR.js', SCRIPT_URL).href;
  const MAX_SIDE = 1600; // larger photos are scaled down before decoding
  const SCAN_INTERVAL_MS = 200;

  // ---- Digital Links ---------------------------------------------------------

  function gtinValid(g) {
    let sum = 0;
    for (let i = 0; i < 13; i++) sum += Number(g[12 - i]) * (i % 2 === 0 ? 3 : 1);
    return (10 - (sum % 10)) % 10 === Number(g[13]);
  }

  // digitalLinkPath returns "/01/{gtin}/21/{serial}" (serial still
  // percent-encoded, as in the link) for a GS1 Digital Link URI of an item,
  // or "" if text is not one. The server checks it again; this only keeps
  // the scanner from opening pages for unrelated QR codes.
  function digitalLinkPath(text) {
    let url;
    try { url = new URL(String(text).trim()); } catch { return ''; }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return '';
    const m = /\/01\/([0-9]{8}|[0-9]{12,14})\/21\/([^/]+)$/.exec(url.pathname);
    if (!m || !gtinValid(m[1].padStart(14, '0'))) return '';
    return `/01/${m[1]}/21/${m[2]}`;
  }

  // open navigates to the courier page for the item, keeping the language.
  function open(path) {
    const q = new URLSearchParams({ item: path });
    const lang = new URLSearchParams(location.search).get('lang');
    if (lang) q.set('lang', lang);
    location.assign(`/courier?${q}`);
  }

  // ---- decoders ----------------------------------------------------------------

  let jsQRPromise = null; // the vendored decoder, loaded once on demand

  function loadJsQR() {
    if (window.jsQR) return Promise.resolve(window.jsQR);
    jsQRPromise ??= new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = JSQR_URL;
      s.onload = () => (window.jsQR ? resolve(window.jsQR) : reject(new Error('QR decoder did not load')));
      s.onerror = () => { jsQRPromise = null; reject(new Error('QR decoder could not be loaded')); };
      document.head.append(s);
    });
    return jsQRPromise;
  }

  let detectorPromise = null;

  // nativeDetector returns a BarcodeDetector for QR codes, or null.
  function nativeDetector() {
    detectorPromise ??= (async () => {
      if (!('BarcodeDetector' in window)) return null;
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        return formats.includes('qr_code') ? new window.BarcodeDetector({ formats: ['qr_code'] }) : null;
      } catch {
        return null;
      }
    })();
    return detectorPromise;
  }

  // decodeSource reads a QR code from an image or video frame (anything
  // drawImage takes), returning its text or "".
  async function decodeSource(source, width, height, canvas) {
    const detector = await nativeDetector();
    if (detector) {
      try {
        const codes = await detector.detect(source);
        if (codes.length) return codes[0].rawValue;
      } catch {
        // fall through to jsQR
      }
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    canvas.width = w;
    canvas.height = h;
    const g = canvas.getContext('2d', { willReadFrequently: true });
    g.drawImage(source, 0, 0, w, h);
    const jsQR = await loadJsQR();
    const code = jsQR(g.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: 'attemptBoth' });
    return code ? code.data : '';
  }

  // decodeImageFile reads a QR code from an image file (a photo).
  async function decodeImageFile(file) {
    const bitmap = await createImageBitmap(file);
    try {
      return await decodeSource(bitmap, bitmap.width, bitmap.height, document.createElement('canvas'));
    } finally {
      bitmap.close();
    }
  }

  // ---- the page ------------------------------------------------------------------

  // A Scanner ties the page's elements together; one per scanner section.
  class Scanner {
    constructor(section) {
      this.section = section;
      this.video = section.querySelector('[data-testid=scanner-video]');
      this.upload = section.querySelector('[data-testid=scan-upload]');
      this.status = section.querySelector('[data-testid=scan-result]') || this.addStatus();
      this.canvas = document.createElement('canvas');
      this.stream = null;
      this.timer = 0;
    }

    addStatus() {
      const out = document.createElement('output');
      out.dataset.testid = 'scan-result';
      out.setAttribute('aria-live', 'polite');
      this.section.append(out);
      return out;
    }

    say(text, state) {
      this.status.textContent = text;
      this.status.dataset.state = state;
    }

    // found handles decoded text: open the item, or say what it was.
    found(text) {
      const path = digitalLinkPath(text);
      if (!path) {
        this.say(`This QR code is not a product code: ${text.slice(0, 120)}`, 'not-item');
        return false;
      }
      this.stop();
      this.say('Opening the item…', 'found');
      open(path);
      return true;
    }

    async onFile() {
      const file = this.upload.files && this.upload.files[0];
      if (!file) return;
      this.say('Reading the photo…', 'busy');
      try {
        const text = await decodeImageFile(file);
        if (text) this.found(text);
        else this.say('No QR code found in this photo. Try again closer, with the whole code in view.', 'none');
      } catch (e) {
        this.say(`The photo could not be read (${e.message}).`, 'error');
      }
    }

    async start() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        this.say('This browser gives no camera here: choose a photo of the code instead.', 'no-camera');
        return;
      }
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
      } catch (e) {
        this.say(`The camera is not available (${e.name}): choose a photo of the code instead.`, 'no-camera');
        return;
      }
      this.video.srcObject = this.stream;
      this.video.hidden = false;
      await this.video.play().catch(() => {});
      this.say('Point the camera at the QR code.', 'scanning');
      this.loop();
    }

    // loop decodes one frame at a time, never two at once.
    loop() {
      this.timer = setTimeout(async () => {
        if (!this.stream) return;
        const { videoWidth: w, videoHeight: h } = this.video;
        let text = '';
        if (w && h) {
          try { text = await decodeSource(this.video, w, h, this.canvas); } catch { text = ''; }
        }
        if (!(text && this.found(text)) && this.stream) this.loop();
      }, SCAN_INTERVAL_MS);
    }

    stop() {
      clearTimeout(this.timer);
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
    }

    init() {
      if (this.upload) this.upload.addEventListener('change', () => this.onFile());
      if (this.video) {
        let button = this.section.querySelector('[data-testid=scan-start]');
        if (!button) {
          button = document.createElement('button');
          button.type = 'button';
          button.dataset.testid = 'scan-start';
          button.textContent = this.section.dataset.startLabel || 'Start camera';
          this.video.before(button);
        }
        button.addEventListener('click', () => this.start());
        window.addEventListener('pagehide', () => this.stop());
      }
    }
  }

  function init() {
    for (const section of document.querySelectorAll('[data-testid=scanner]')) new Scanner(section).init();
  }

  window.provtrailScan = Object.freeze({ decodeImageFile, digitalLinkPath });
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
