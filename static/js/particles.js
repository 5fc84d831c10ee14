// Korean particles after a filled-in value, chosen by how the value is read aloud: the twin of
// app/particles.py (see there for the rules and sources; tests/app/test_particles.py runs both
// over the same cases). `{padding}(으)로` with padding 1 → "1로", with 3 → "3으로".

export const MARKERS = {
  "(으)로": ["으로", "로"],
  "은(는)": ["은", "는"],
  "이(가)": ["이", "가"],
  "을(를)": ["을", "를"],
  "과(와)": ["과", "와"],
};
const MARKER = Object.keys(MARKERS).map((m) => m.replace(/[()]/g, "\\$&")).join("|");
const PLACEHOLDER = new RegExp(`\\{(\\w+)\\}(${MARKER})?`, "g");

const VOWEL = "vowel";
const RIEUL = "rieul";
const CONSONANT = "consonant";
const DIGITS = { 0: CONSONANT, 1: RIEUL, 2: VOWEL, 3: CONSONANT, 4: VOWEL, 5: VOWEL, 6: CONSONANT, 7: RIEUL, 8: RIEUL, 9: VOWEL };
// 1, 2, … trailing zeros → 십 백 천 만 … 억 (consonant), 조 (vowel), 경 (consonant)
const UNITS = [...Array(11).fill(CONSONANT), ...Array(4).fill(VOWEL), ...Array(4).fill(CONSONANT)];
const LETTER_FINALS = { l: RIEUL, r: RIEUL, m: CONSONANT, n: CONSONANT };
const SYMBOLS = { "%": VOWEL, "×": VOWEL };
const SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹";
const CLOSING = /[\s)\]}>"'’”]+$/;
const NUMBER_END = /(\.?)([0-9][0-9,]*)$/;

/** How `text` ends read aloud: "vowel", "rieul" (ㄹ), "consonant", or null (unknown). */
export function finalSound(value) {
  const text = [...String(value)].map((c) => (SUPERSCRIPTS.includes(c) ? String(SUPERSCRIPTS.indexOf(c)) : c)).join("").replace(CLOSING, "");
  if (!text) return null;
  const last = text.at(-1);
  if (last >= "가" && last <= "힣") {
    const coda = (last.codePointAt(0) - "가".codePointAt(0)) % 28;
    return coda === 0 ? VOWEL : coda === 8 ? RIEUL : CONSONANT;
  }
  if (/[0-9]/.test(last)) {
    const [, decimal, raw] = text.match(NUMBER_END);
    const digits = raw.replaceAll(",", "");
    if (decimal || !digits.endsWith("0") || /^0+$/.test(digits)) return DIGITS[digits.at(-1)];
    const zeros = digits.length - digits.replace(/0+$/, "").length;
    return UNITS[Math.min(zeros, UNITS.length) - 1];
  }
  if (/[a-z]/i.test(last)) return LETTER_FINALS[last.toLowerCase()] ?? VOWEL;
  return SYMBOLS[last] ?? null;
}

/** The form of `marker` (e.g. "(으)로") that follows `value`; the marker itself if unknown. */
export function particle(value, marker) {
  const sound = finalSound(value);
  if (sound === null) return marker;
  const [afterConsonant, afterVowel] = MARKERS[marker];
  if (marker === "(으)로" && sound === RIEUL) return afterVowel;
  return sound === VOWEL ? afterVowel : afterConsonant;
}

/** `{name}` placeholders filled from `params`, each particle marker after one made to agree. */
export function withParticles(template, params) {
  return template.replace(PLACEHOLDER, (match, name, marker) => {
    if (!(name in params)) return match;
    const value = String(params[name]);
    return value + (marker ? particle(value, marker) : "");
  });
}
