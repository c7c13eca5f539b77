// Exact decimal strings as BigInt + scale: the book's totals and spread never go through floats.

export function parse(text) {
  let s = String(text).trim();
  const negative = s.startsWith("-");
  if (negative) s = s.slice(1);
  const [whole, fraction = ""] = s.split(".");
  const value = BigInt((whole || "0") + fraction);
  return { value: negative ? -value : value, scale: fraction.length };
}

function aligned(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return [
    a.value * 10n ** BigInt(scale - a.scale),
    b.value * 10n ** BigInt(scale - b.scale),
    scale,
  ];
}

export function add(a, b) {
  const [x, y, scale] = aligned(parse(a), parse(b));
  return format({ value: x + y, scale });
}

export function sub(a, b) {
  const [x, y, scale] = aligned(parse(a), parse(b));
  return format({ value: x - y, scale });
}

export function cmp(a, b) {
  const [x, y] = aligned(parse(a), parse(b));
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZero(a) {
  return parse(a).value === 0n;
}

export function format({ value, scale }) {
  const negative = value < 0n;
  let digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  let whole = digits.slice(0, digits.length - scale);
  let fraction = scale ? digits.slice(digits.length - scale).replace(/0+$/, "") : "";
  const out = fraction ? `${whole}.${fraction}` : whole;
  return negative && out !== "0" ? `-${out}` : out;
}
