/* SHA-256 of a file's bytes. Web Crypto where the page is a secure context (https,
   http://localhost, http://127.0.0.1); a plain-JavaScript fallback elsewhere (a phone that
   opens http://192.168.x.x:8000 has no crypto.subtle). */
(function () {
  "use strict";

  function firstPrimes(count) {
    const primes = [];
    for (let n = 2; primes.length < count; n++) {
      if (primes.every((p) => n % p !== 0)) primes.push(n);
    }
    return primes;
  }
  const primes = firstPrimes(64);
  const frac = (x) => Math.floor((x - Math.floor(x)) * 4294967296) >>> 0;
  const K = new Uint32Array(primes.map((p) => frac(Math.cbrt(p))));
  const H0 = primes.slice(0, 8).map((p) => frac(Math.sqrt(p)));

  function sha256Plain(buffer) {
    const bytes = new Uint8Array(buffer);
    const length = bytes.length;
    const total = Math.ceil((length + 9) / 64) * 64;
    const padded = new Uint8Array(total);
    padded.set(bytes);
    padded[length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(total - 8, Math.floor(length / 0x20000000));
    view.setUint32(total - 4, (length * 8) >>> 0);
    const h = H0.slice();
    const w = new Uint32Array(64);
    for (let offset = 0; offset < total; offset += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + i * 4);
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15];
        const b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let [a, b, c, d, e, f, g, k] = h;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
    }
    return h.map((x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
  }

  const forcePlain = new URLSearchParams(location.search).has("plain-sha256");
  const subtle = !forcePlain && window.crypto && window.crypto.subtle;

  async function sha256Hex(buffer) {
    if (subtle) {
      const digest = new Uint8Array(await subtle.digest("SHA-256", buffer));
      return Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join("");
    }
    return sha256Plain(buffer);
  }

  window.XinTuHash = { sha256Hex, sha256Plain, usesWebCrypto: Boolean(subtle) };
})();
