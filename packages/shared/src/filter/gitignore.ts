/**
 * Git's exclude patterns, ported from git's dir.c (parsing, basename/pathname matching) and
 * wildmatch.c (the glob matcher), so that the result is git's by construction rather than by a
 * regular-expression translation. Git matches bytes, so patterns and paths are handled as
 * "byte strings": one JS char per UTF-8 byte (latin1 of the UTF-8 encoding). That keeps `?` and
 * `[é]` exactly as git sees them (one byte, not one character).
 *
 * Not ported: core.ignoreCase (off, as on any Linux repository). Tracked files are the filter's
 * business (filter.ts, tracked.ts): these rules only ever decide untracked paths.
 */

const NEGATIVE = 1;
const MUSTBEDIR = 2;
const NODIR = 4;
const ENDSWITH = 8;

/** Where a pattern comes from, for `sync-agent files --why`. */
export interface PatternOrigin {
  source: 'exclude' | 'gitignore' | 'info-exclude' | 'defaults';
  /** The ignore file (absolute), for the sources that are files. */
  file?: string;
}

export interface GitPattern {
  /** The pattern bytes, without a leading `!` and a trailing `/`. */
  pattern: string;
  /** The whole pattern as written (bytes), and its 1-based line in its file (0 when not from a file). */
  text: string;
  line: number;
  origin?: PatternOrigin;
  flags: number;
  /** Directory the pattern is relative to, as a byte string ending in `/`, or '' for the top. */
  base: string;
  /**
   * The pattern split as git's matchers use it: the leading part without glob characters (git's
   * nowildcardlen; for a pathname pattern, after its leading `/`) and the rest.
   */
  literal: string;
  rest: string;
  /** For `*literal` (git's ENDSWITH), the literal. */
  suffix: string;
}

const UTF8_BOM = '\xEF\xBB\xBF';
const ASCII = /^[\x00-\x7F]*$/;

/** The byte string of a JS string (a no-op for ASCII, the common case). */
export function toBytes(s: string): string {
  return ASCII.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

const isGlobSpecial = (c: number) => c === 0x2a || c === 0x3f || c === 0x5b || c === 0x5c; // * ? [ \

function simpleLength(s: string): number {
  let i = 0;
  while (i < s.length && !isGlobSpecial(s.charCodeAt(i))) i++;
  return i;
}

/** One pattern as git's add_pattern() takes it (no trimming, no comment handling: that is the file reader's job). */
export function parsePattern(line: string, base: string): GitPattern | undefined {
  let p = line;
  let flags = 0;
  if (p.startsWith('!')) {
    flags |= NEGATIVE;
    p = p.slice(1);
  }
  let len = p.length;
  if (len > 0 && p.endsWith('/')) {
    len--;
    flags |= MUSTBEDIR;
  }
  // An empty pattern (``, `!`, `/`) can never match: git keeps it, we drop it.
  if (len === 0) return undefined;
  const pattern = p.slice(0, len);
  if (!pattern.includes('/')) flags |= NODIR;
  if (p.startsWith('*') && simpleLength(p.slice(1)) === p.length - 1) flags |= ENDSWITH;
  const suffix = flags & ENDSWITH ? pattern.slice(1) : '';
  // match_pathname() drops a leading slash: the pattern is relative to its base anyway.
  const body = !(flags & NODIR) && pattern.startsWith('/') ? pattern.slice(1) : pattern;
  const prefix = simpleLength(body);
  return { pattern, text: line, line: 0, flags, base, literal: body.slice(0, prefix), rest: body.slice(prefix), suffix };
}

/** git's trim_trailing_spaces(): unescaped trailing spaces go; tabs and `\ ` stay. */
function trimTrailingSpaces(s: string): string {
  let lastSpace = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === ' ') {
      if (lastSpace < 0) lastSpace = i;
    } else if (c === '\\') {
      i++;
      if (i >= s.length) return s;
      lastSpace = -1;
    } else {
      lastSpace = -1;
    }
  }
  return lastSpace < 0 ? s : s.slice(0, lastSpace);
}

/** The patterns of an ignore file's bytes (latin1-decoded), as git's add_patterns_from_buffer() reads them. */
export function parseIgnoreFile(bytes: string, base: string): GitPattern[] {
  let text = bytes.startsWith(UTF8_BOM) ? bytes.slice(3) : bytes;
  if (text.length > 0 && !text.endsWith('\n')) text += '\n';
  const out: GitPattern[] = [];
  let start = 0;
  let lineNo = 0;
  for (let i = text.indexOf('\n'); i >= 0; start = i + 1, i = text.indexOf('\n', start)) {
    lineNo++;
    if (i === start || text[start] === '#') continue;
    const end = text[i - 1] === '\r' ? i - 1 : i;
    let line = text.slice(start, end);
    const nul = line.indexOf('\0');
    if (nul >= 0) line = line.slice(0, nul); // git's lines are C strings
    const p = parsePattern(trimTrailingSpaces(line), base);
    if (p) {
      p.line = lineNo;
      out.push(p);
    }
  }
  return out;
}

/**
 * The last pattern of `list` matching `path` (a byte string relative to the top, no trailing
 * slash), or undefined. `baseOff` is where the basename starts. As in git, the last match wins.
 */
export function lastMatch(list: readonly GitPattern[], path: string, baseOff: number, isDir: boolean): GitPattern | undefined {
  for (let i = list.length - 1; i >= 0; i--) {
    const p = list[i]!;
    if (p.flags & MUSTBEDIR && !isDir) continue;
    if (p.flags & NODIR ? matchBasename(path, baseOff, p) : matchPathname(path, p)) return p;
  }
  return undefined;
}

export const isNegative = (p: GitPattern): boolean => (p.flags & NEGATIVE) !== 0;

function matchBasename(path: string, baseOff: number, p: GitPattern): boolean {
  const { pattern } = p;
  // A literal name; `*literal` (git's ENDSWITH); else the glob, without WM_PATHNAME.
  if (p.rest === '') return path.length - baseOff === pattern.length && path.startsWith(pattern, baseOff);
  if (p.flags & ENDSWITH) return path.length - baseOff >= pattern.length - 1 && path.endsWith(p.suffix);
  return wildmatch(pattern, 0, path, baseOff, false) === MATCH;
}

/** git's match_pathname(): the base, then the literal part, then the glob with WM_PATHNAME. */
function matchPathname(path: string, p: GitPattern): boolean {
  const { base, literal } = p;
  // The paths a list is asked about are under its base, so they share it and differ (if at all)
  // right after it: that byte first, before comparing the whole base for every pattern and path.
  if (literal.length > 0 && path.charCodeAt(base.length) !== literal.charCodeAt(0)) return false;
  if (!path.startsWith(base)) return false;
  const t = base.length + literal.length;
  if (!path.startsWith(literal, base.length)) return false;
  if (p.rest === '') return t === path.length;
  return wildmatch(p.rest, 0, path, t, true) === MATCH;
}

// ------------------------------------------------------------------ wildmatch.c

const MATCH = 0;
const NOMATCH = 1;
const ABORT_ALL = -1;
const ABORT_TO_STARSTAR = -2;

const SLASH = 0x2f;
const STAR = 0x2a;
const BACKSLASH = 0x5c;

const at = (s: string, i: number): number => (i < s.length ? s.charCodeAt(i) : 0);

const inRange = (c: number, lo: number, hi: number) => c >= lo && c <= hi;
const isAlpha = (c: number) => inRange(c, 0x41, 0x5a) || inRange(c, 0x61, 0x7a);
const isDigit = (c: number) => inRange(c, 0x30, 0x39);
/** git's own ASCII-only ctype (sane-ctype.h): \v and \f are not space. */
const CLASSES: Record<string, (c: number) => boolean> = {
  alnum: (c) => isAlpha(c) || isDigit(c),
  alpha: isAlpha,
  blank: (c) => c === 0x20 || c === 0x09,
  cntrl: (c) => c < 0x20 || c === 0x7f,
  digit: isDigit,
  graph: (c) => inRange(c, 0x21, 0x7e),
  lower: (c) => inRange(c, 0x61, 0x7a),
  print: (c) => inRange(c, 0x20, 0x7e),
  punct: (c) => inRange(c, 0x21, 0x7e) && !isAlpha(c) && !isDigit(c),
  space: (c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d,
  upper: (c) => inRange(c, 0x41, 0x5a),
  xdigit: (c) => isDigit(c) || inRange(c, 0x41, 0x46) || inRange(c, 0x61, 0x66),
};

/** git's dowild(): `p`/`t` index into pattern `P` and text `T`; `pathname` is WM_PATHNAME. */
function wildmatch(P: string, p: number, T: string, t: number, pathname: boolean): number {
  for (; p < P.length; t++, p++) {
    let pc = P.charCodeAt(p);
    let tc = at(T, t);
    if (tc === 0 && pc !== STAR) return ABORT_ALL;
    switch (pc) {
      case BACKSLASH:
        // Literal match with the next character; a trailing backslash matches nothing.
        pc = at(P, ++p);
        if (tc !== pc) return NOMATCH;
        continue;
      case 0x3f: // ?
        if (pathname && tc === SLASH) return NOMATCH;
        continue;
      case STAR: {
        let matchSlash: boolean;
        if (at(P, ++p) === STAR) {
          const prev = p - 2;
          while (at(P, ++p) === STAR);
          const next = at(P, p);
          if ((prev < 0 || P.charCodeAt(prev) === SLASH) && (next === 0 || next === SLASH || (next === BACKSLASH && at(P, p + 1) === SLASH))) {
            // `**/` may match nothing at all: try the rest of the pattern right here.
            if (next === SLASH && wildmatch(P, p + 1, T, t, pathname) === MATCH) return MATCH;
            matchSlash = true;
          } else {
            matchSlash = false;
          }
        } else {
          matchSlash = !pathname;
        }
        if (p >= P.length) {
          // A trailing `**` matches everything, a trailing `*` only up to the next slash.
          return !matchSlash && T.indexOf('/', t) >= 0 ? NOMATCH : MATCH;
        }
        if (!matchSlash && at(P, p) === SLASH) {
          // One `*` then a slash: skip to the next directory of the text.
          const slash = T.indexOf('/', t);
          if (slash < 0) return NOMATCH;
          t = slash;
          break;
        }
        for (;;) {
          if (tc === 0) break;
          const next = at(P, p);
          if (!isGlobSpecial(next)) {
            // Fast-forward to the literal that follows the star.
            while ((tc = at(T, t)) !== 0 && (matchSlash || tc !== SLASH)) {
              if (tc === next) break;
              t++;
            }
            if (tc !== next) return NOMATCH;
          }
          const m = wildmatch(P, p, T, t, pathname);
          if (m !== NOMATCH) {
            if (!matchSlash || m !== ABORT_TO_STARSTAR) return m;
          } else if (!matchSlash && tc === SLASH) {
            return ABORT_TO_STARSTAR;
          }
          tc = at(T, ++t);
        }
        return ABORT_ALL;
      }
      case 0x5b: { // [
        pc = at(P, ++p);
        if (pc === 0x5e) pc = 0x21; // `[^` is `[!`
        const negated = pc === 0x21;
        if (negated) pc = at(P, ++p);
        let prev = 0;
        let matched = false;
        do {
          if (pc === 0) return ABORT_ALL;
          if (pc === BACKSLASH) {
            pc = at(P, ++p);
            if (pc === 0) return ABORT_ALL;
            if (tc === pc) matched = true;
          } else if (pc === 0x2d && prev !== 0 && at(P, p + 1) !== 0 && at(P, p + 1) !== 0x5d) { // a-z
            pc = at(P, ++p);
            if (pc === BACKSLASH) {
              pc = at(P, ++p);
              if (pc === 0) return ABORT_ALL;
            }
            if (tc <= pc && tc >= prev) matched = true;
            pc = 0; // no range may start at a range's end
          } else if (pc === 0x5b && at(P, p + 1) === 0x3a) { // [:class:]
            const s = (p += 2);
            while ((pc = at(P, p)) !== 0 && pc !== 0x5d) p++;
            if (pc === 0) return ABORT_ALL;
            if (p - s - 1 < 0 || P.charCodeAt(p - 1) !== 0x3a) {
              // No ":]": a plain `[` member, and the scan resumes after it.
              p = s - 2;
              pc = 0x5b;
              if (tc === pc) matched = true;
              continue;
            }
            const test = CLASSES[P.slice(s, p - 1)];
            if (!test) return ABORT_ALL;
            if (test(tc)) matched = true;
            pc = 0;
          } else if (tc === pc) {
            matched = true;
          }
        } while (((prev = pc), (pc = at(P, ++p)) !== 0x5d));
        if (matched === negated || (pathname && tc === SLASH)) return NOMATCH;
        continue;
      }
      default:
        if (tc !== pc) return NOMATCH;
        continue;
    }
  }
  return t < T.length ? NOMATCH : MATCH;
}
