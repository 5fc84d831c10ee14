// Seeded pseudo-random numbers, so a seed in the URL reproduces exactly the same "random" input.

/** mulberry32: a small, fast 32-bit generator (Tommy Ettinger); returns floats in [0, 1). */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return function next() {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [low, high] (both included) from the generator `next`. */
export function randomInt(next, low, high) {
  return low + Math.floor(next() * (high - low + 1));
}

/** A fresh seed for the "new random" buttons. */
export function newSeed() {
  return 1 + Math.floor(Math.random() * 99999);
}
