/** Parsing of human-friendly sizes (`1G`, `512MiB`) and durations (`5m`, `250ms`), as rclone accepts them. */

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

const DURATION_UNITS: Record<string, number> = {
  ms: 1, s: 1000, '': 1000, m: 60_000, h: 3_600_000, d: 86_400_000,
};

/** Bytes from `123`, `64K`, `1G`, `1.5GiB`. Binary multiples: storage users think in those. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') return checkNonNegative(Math.round(input), input);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  const mult = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) throw new RangeError(`"${input}" is not a size (examples: 1048576, 512M, 1G)`);
  return checkNonNegative(Math.round(Number(m[1]) * mult), input);
}

/** Milliseconds from `250ms`, `2s`, `5m`, `1h`, `1h30m`; a bare number (alone) means seconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') return checkNonNegative(Math.round(input * 1000), input);
  const text = input.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|)/gy;
  let total = 0;
  let consumed = 0;
  let parts = 0;
  let unitless = false;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    consumed = re.lastIndex;
    parts++;
    unitless ||= m[2] === '';
  }
  // `1h30` is refused (as Go and rclone do) rather than read as 1h and 30 seconds.
  if (text === '' || consumed !== text.length || (unitless && parts > 1)) {
    throw new RangeError(`"${input}" is not a duration (examples: 500ms, 2s, 5m, 1h)`);
  }
  return checkNonNegative(Math.round(total), input);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function checkNonNegative(value: number, input: unknown): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${String(input)} must be a non-negative number`);
  return value;
}
