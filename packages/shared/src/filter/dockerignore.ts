/**
 * `.dockerignore` with Docker's own rules, as BuildKit applies them: the file is read like
 * moby/patternmatcher's ignorefile.ReadAll, patterns are compiled like patternmatcher (exact, prefix,
 * suffix or a Go regexp), a path is matched with MatchesUsingParentResults (a pattern that matched a
 * directory matches everything below it; the last matching pattern decides), and an excluded
 * directory is pruned under the same condition as BuildKit's fsutil walker.
 *
 * Where Docker refuses the whole file (a lone `!`, a malformed pattern such as `[a-`), the offending
 * pattern is dropped instead: a sync should not stop over a .dockerignore. Known differences: Go
 * regexp syntax (`[[:alpha:]]`, `\pL`, `x{2,}` forms RE2 refuses) is read as JavaScript's, and a
 * class matches one UTF-16 unit rather than one code point.
 */

export interface DockerPattern {
  text: string;
  /** 1-based line in the .dockerignore. */
  line: number;
  exclusion: boolean;
  match: (path: string) => boolean;
}

export interface DockerIgnore {
  patterns: readonly DockerPattern[];
  /** BuildKit prunes excluded directories only if no exception holds a wildcard or escape (but a trailing `/*` or `/**`). */
  onlyPrefixExceptions: boolean;
}

/** Go's strings.TrimSpace (unicode.IsSpace), which differs from String.prototype.trim. */
const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const TRIM = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');
const trimSpace = (s: string) => s.replace(TRIM, '');

/** Go's path.Clean on a slash-separated path. */
function clean(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg !== '..') out.push(seg);
    else if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (!rooted) out.push('..');
  }
  const s = out.join('/');
  return rooted ? `/${s}` : s || '.';
}

/** ignorefile.ReadAll: the pattern lines of a .dockerignore. */
function readLines(text: string): Array<{ text: string; line: number }> {
  const out: Array<{ text: string; line: number }> = [];
  text.split('\n').forEach((raw, i) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith('\uFEFF')) line = line.slice(1);
    if (line.startsWith('#')) return;
    let p = trimSpace(line);
    if (p === '') return;
    const invert = p.startsWith('!');
    if (invert) p = trimSpace(p.slice(1));
    if (p.length > 0) {
      p = clean(p);
      if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    }
    out.push({ text: invert ? `!${p}` : p, line: i + 1 });
  });
  return out;
}

/** Whether Go's filepath.Match accepts the pattern (patternmatcher.New refuses it otherwise). */
function isValidGoPattern(p: string): boolean {
  const c = Array.from(p);
  let i = 0;
  const escaped = (): boolean => { // filepath's getEsc
    if (i >= c.length || c[i] === '-' || c[i] === ']') return false;
    if (c[i] === '\\' && ++i >= c.length) return false;
    return ++i < c.length;
  };
  while (i < c.length) {
    const ch = c[i++];
    if (ch === '\\') {
      if (i++ >= c.length) return false;
    } else if (ch === '[') {
      if (c[i] === '^') i++;
      for (let n = 0; !(c[i] === ']' && n > 0); n++) {
        if (!escaped()) return false;
        if (c[i] === '-') {
          i++;
          if (!escaped()) return false;
        }
      }
      i++;
    }
  }
  return true;
}

// The regexp characters patternmatcher escapes. It means to escape `.+()|{}$`, but its bitmap is
// [8]byte indexed by `1 << (b/8)`, which is 0 for any byte >= 64: `|`, `{` and `}` keep their regexp
// meaning in Docker (verified against the docker CLI), so they keep it here.
const ESCAPED = new Set(['.', '+', '(', ')', '$']);
// Go's `.` never matches a newline and `[^/]` matches a code point: say so in JavaScript terms.
const ANY = '[^\\n]';
const ONE = '(?:[\\uD800-\\uDBFF][\\uDC00-\\uDFFF]|[^/])';

/** patternmatcher's Pattern.compile + match; undefined when Go would fail to compile it. */
function compile(pattern: string): ((path: string) => boolean) | undefined {
  let re = '^';
  let kind: 'exact' | 'prefix' | 'suffix' | 'regexp' = 'exact';
  const c = Array.from(pattern);
  for (let i = 0; i < c.length; i++) {
    const ch = c[i]!;
    if (ch === '*') {
      if (c[i + 1] !== '*') {
        re += '[^/]*';
        kind = 'regexp';
        continue;
      }
      const first = i === 0;
      i++;
      if (c[i + 1] === '/') i++;
      if (i + 1 >= c.length) {
        if (kind === 'exact') kind = 'prefix';
        else {
          re += `${ANY}*`;
          kind = 'regexp';
        }
      } else {
        re += `(?:${ANY}*/)?`;
        kind = 'regexp';
      }
      if (first) kind = 'suffix';
    } else if (ch === '?') {
      re += ONE;
      kind = 'regexp';
    } else if (ESCAPED.has(ch)) {
      re += `\\${ch}`;
    } else if (ch === '\\') {
      if (i + 1 < c.length) {
        re += `\\${c[++i]}`;
        kind = 'regexp';
      } else {
        re += '\\';
      }
    } else {
      if (ch === '[' || ch === ']') kind = 'regexp';
      re += ch;
    }
  }
  switch (kind) {
    case 'exact':
      return (p) => p === pattern;
    case 'prefix': {
      const head = pattern.slice(0, -2);
      return (p) => p.startsWith(head);
    }
    case 'suffix': {
      const tail = pattern.slice(2);
      return (p) => p.endsWith(tail) || (tail.startsWith('/') && p === tail.slice(1));
    }
    case 'regexp': {
      let rx: RegExp;
      try {
        rx = new RegExp(`${re}$`);
      } catch {
        return undefined;
      }
      return (p) => rx.test(p);
    }
  }
}

export function parseDockerignore(text: string): DockerIgnore {
  const patterns: DockerPattern[] = [];
  for (const { text: line, line: lineNo } of readLines(text)) {
    let p = clean(trimSpace(line));
    const exclusion = p.startsWith('!');
    if (exclusion) {
      if (p.length === 1) continue;
      p = p.slice(1);
    }
    const match = isValidGoPattern(p) ? compile(p) : undefined;
    if (match) patterns.push({ text: p, line: lineNo, exclusion, match });
  }
  const onlyPrefixExceptions = !patterns.some((p) => p.exclusion && /[*[\]?^\\]/.test(withoutTrailingGlob(p.text)));
  return { patterns, onlyPrefixExceptions };
}

/** fsutil's patternWithoutTrailingGlob: `a/b/**` and `a/b/*` count as the prefix `a/b`. */
function withoutTrailingGlob(p: string): string {
  const q = p.endsWith('/**') ? p.slice(0, -3) : p;
  return q.endsWith('/*') ? q.slice(0, -2) : q;
}

/** Per-pattern "matched" flags of the workspace root, the start of every walk. */
export function rootMatchInfo(d: DockerIgnore): boolean[] {
  return d.patterns.map(() => false);
}

/**
 * patternmatcher's MatchesUsingParentResults: whether `rel` is excluded, its own per-pattern flags
 * for its children, and the last pattern that matched (the one that decides; -1 for none). A pattern
 * that matched the parent matches the child.
 */
export function dockerMatch(d: DockerIgnore, rel: string, parent: readonly boolean[]): { excluded: boolean; info: boolean[]; decidedBy: number } {
  let excluded = false;
  let decidedBy = -1;
  const info = d.patterns.map(() => false);
  d.patterns.forEach((p, i) => {
    let match = parent[i]!;
    if (!match) {
      // Only a pattern that could change the outcome is evaluated (and then remembered).
      if (p.exclusion !== excluded) return;
      match = p.match(rel);
    }
    info[i] = match;
    if (match) {
      excluded = !p.exclusion;
      decidedBy = i;
    }
  });
  return { excluded, info, decidedBy };
}

/** Whether BuildKit skips the excluded directory `rel` rather than walking it for exceptions. */
export function dockerPrunes(d: DockerIgnore, rel: string): boolean {
  if (!d.onlyPrefixExceptions) return false;
  const dirSlash = `${rel}/`;
  return !d.patterns.some((p) => p.exclusion && `${withoutTrailingGlob(p.text)}/`.startsWith(dirSlash));
}

/** Whether `.dockerignore` text excludes `rel` (a path relative to its directory), as Docker decides. */
export function dockerignoreMatcher(text: string): (rel: string) => boolean {
  const d = parseDockerignore(text);
  return (rel) => {
    let info = rootMatchInfo(d);
    let excluded = false;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) ({ excluded, info } = dockerMatch(d, parts.slice(0, i).join('/'), info));
    return excluded;
  };
}
