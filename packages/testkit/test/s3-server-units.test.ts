// The embedded S3 server's pure parts, in-process: key order, listing pages, ranges and
// preconditions, XML reading, aws-chunked decoding, and the object file format.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAwsChunked } from '../src/s3-server/chunked.js';
import { checkRead, etagMatches, parseRange } from '../src/s3-server/conditions.js';
import { S3Error } from '../src/s3-server/errors.js';
import { SortedKeys, compareKeys } from '../src/s3-server/key-order.js';
import { listKeys } from '../src/s3-server/listing.js';
import { closeBodyFile, openBodyFile, readBody, readHeader, writeBodyFile, type FileHeader } from '../src/s3-server/object-file.js';
import type { ObjectHeader } from '../src/s3-server/store.js';
import { childText, children, escapeXml, rootElement } from '../src/s3-server/xml.js';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ['a', 'b', '-', '/', '.', 'A', 'é', '\uff5e', '\ue000', '😀', '𝄞', ' ', '+', '%', '~'];
const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function randomKeys(rand: () => number, n: number): string[] {
  const keys = new Set<string>();
  while (keys.size < n) {
    const len = 1 + Math.floor(rand() * 7);
    keys.add(Array.from({ length: len }, () => ALPHABET[Math.floor(rand() * ALPHABET.length)]).join(''));
  }
  return [...keys];
}

describe('key order', () => {
  it('is UTF-8 byte order, characters above U+FFFF included', () => {
    const rand = rng(1);
    for (let i = 0; i < 5000; i++) {
      const [a, b] = randomKeys(rand, 2) as [string, string];
      expect(Math.sign(compareKeys(a, b)), `${a} vs ${b}`).toBe(Math.sign(utf8Order(a, b)));
    }
    expect(compareKeys('\uff5e', '😀')).toBeLessThan(0); // UTF-16 code units would say the opposite
    expect(compareKeys('a-b', 'a/b')).toBeLessThan(0);
  });

  it('keeps a sorted set with prefix bounds', () => {
    const keys = SortedKeys.of(['b', 'a/x', 'a', 'a-b', 'a/y', 'c']);
    keys.add('a/z');
    keys.add('a/x'); // already there
    keys.delete('c');
    keys.delete('nope');
    expect(Array.from({ length: keys.size }, (_, i) => keys.at(i))).toEqual(['a', 'a-b', 'a/x', 'a/y', 'a/z', 'b']);
    expect(keys.lowerBound('a/')).toBe(2);
    expect(keys.upperBound('a/x')).toBe(3);
    expect(keys.pastPrefix('a/')).toBe(5);
    expect(keys.pastPrefix('zz')).toBe(6);
  });
});

describe('listKeys', () => {
  /** Reference: all entries under prefix after marker, rolled up at delimiter, in order. */
  function reference(all: string[], prefix: string, delimiter: string, marker: string): string[] {
    const out: string[] = [];
    for (const k of [...all].sort(utf8Order)) {
      if (!k.startsWith(prefix)) continue;
      const d = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
      const e = d < 0 ? k : k.slice(0, d + delimiter.length);
      if (marker && utf8Order(e, marker) <= 0) continue;
      if (out.at(-1) !== e) out.push(e);
    }
    return out;
  }

  it('pages through random keys exactly like the reference, for any prefix, delimiter, marker and page size', () => {
    const rand = rng(7);
    for (let round = 0; round < 300; round++) {
      const all = randomKeys(rand, 1 + Math.floor(rand() * 60));
      const sorted = SortedKeys.of(all);
      const pick = () => ALPHABET[Math.floor(rand() * ALPHABET.length)]!;
      const prefix = rand() < 0.3 ? '' : pick() + (rand() < 0.5 ? pick() : '');
      const delimiter = rand() < 0.3 ? '' : rand() < 0.7 ? '/' : pick();
      const start = rand() < 0.5 ? '' : Array.from(all[Math.floor(rand() * all.length)]!).slice(0, 1 + Math.floor(rand() * 3)).join('');
      const maxKeys = 1 + Math.floor(rand() * 5);
      const want = reference(all, prefix, delimiter, start);
      const got: string[] = [];
      let marker = start;
      for (let pages = 0; ; pages++) {
        const page = listKeys(sorted, { prefix, delimiter, marker, maxKeys });
        const entries = [...page.keys, ...page.commonPrefixes].sort(utf8Order);
        expect(entries.length).toBeLessThanOrEqual(maxKeys);
        got.push(...entries);
        if (!page.truncated) break;
        expect(page.last).toBe(entries.at(-1));
        marker = page.last!;
        expect(pages).toBeLessThan(100);
      }
      expect(got, JSON.stringify({ all, prefix, delimiter, start, maxKeys })).toEqual(want);
    }
  });
});

describe('ranges and preconditions', () => {
  const range = (h: string, size = 10) => {
    try {
      return parseRange(h, size);
    } catch (err) {
      return (err as S3Error).code;
    }
  };

  it('parses ranges like S3', () => {
    expect(range('bytes=0-4')).toEqual({ start: 0, end: 4 });
    expect(range('bytes=5-')).toEqual({ start: 5, end: 9 });
    expect(range('bytes=-3')).toEqual({ start: 7, end: 9 });
    expect(range('bytes=-30')).toEqual({ start: 0, end: 9 });
    expect(range('bytes=8-99')).toEqual({ start: 8, end: 9 });
    expect(range('bytes=10-')).toBe('InvalidRange');
    expect(range('bytes=0-', 0)).toBe('InvalidRange');
    expect(range('bytes=-0')).toBe('InvalidRange');
    // Ignored (the whole object is served): malformed, several ranges, last before first.
    for (const h of ['bytes=a-b', 'bytes=0-1,3-4', 'items=0-1', 'bytes=5-2', 'bytes=-']) expect(range(h), h).toBeUndefined();
    expect(parseRange(undefined, 10)).toBeUndefined();
  });

  it('matches ETags quoted, bare, weak, in lists and with *', () => {
    expect(etagMatches('"abc"', 'abc')).toBe(true);
    expect(etagMatches('abc', 'abc')).toBe(true);
    expect(etagMatches('W/"abc"', 'abc')).toBe(true);
    expect(etagMatches('"x", "abc"', 'abc')).toBe(true);
    expect(etagMatches('*', 'abc')).toBe(true);
    expect(etagMatches('"abcd"', 'abc')).toBe(false);
  });

  it('evaluates read preconditions with S3 precedence', () => {
    const obj = { key: 'k', etag: 'abc', size: 1, lastModified: Date.UTC(2026, 0, 1, 12, 0, 0, 500), metadata: {} } as ObjectHeader;
    const at = (ms: number) => new Date(ms).toUTCString();
    const t = obj.lastModified;
    const check = (h: Record<string, string>) => {
      try {
        return checkRead(h, obj);
      } catch (err) {
        return (err as S3Error).status;
      }
    };
    expect(check({})).toBe('ok');
    expect(check({ 'if-none-match': '"abc"' })).toBe('not-modified');
    expect(check({ 'if-match': '"nope"' })).toBe(412);
    // Last-Modified has whole seconds: the same second is "not modified since".
    expect(check({ 'if-modified-since': at(t) })).toBe('not-modified');
    expect(check({ 'if-modified-since': at(t - 1000) })).toBe('ok');
    expect(check({ 'if-unmodified-since': at(t - 1000) })).toBe(412);
    expect(check({ 'if-unmodified-since': 'not a date' })).toBe('ok');
    expect(check({ 'if-match': '"abc"', 'if-unmodified-since': at(t - 1000) })).toBe('ok');
    expect(check({ 'if-none-match': '"x"', 'if-modified-since': at(t + 1000) })).toBe('ok');
  });
});

describe('xml', () => {
  it('escapes text, control characters as references', () => {
    expect(escapeXml(`a&b<c>"d'\u0001\r`)).toBe('a&amp;b&lt;c&gt;&quot;d&apos;&#x1;&#xD;');
  });

  it('reads the flat documents S3 requests carry', () => {
    const doc = rootElement(`<?xml version="1.0"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
      <Object><Key>a &amp; b &#x1F600; &#65;</Key></Object><Object><Key><![CDATA[<raw> & ]]>x</Key><VersionId/></Object><Object><Key> sp </Key></Object></Delete>`, 'Delete');
    expect(childText(doc, 'Quiet')).toBe('true');
    expect(children(doc, 'Object').map((o) => childText(o, 'Key'))).toEqual(['a & b 😀 A', '<raw> & x', ' sp ']);
    expect(childText(children(doc, 'Object')[1]!, 'VersionId')).toBe('');
  });

  it('refuses malformed documents with MalformedXML', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 'ok';
      } catch (err) {
        return (err as S3Error).code;
      }
    };
    expect(code(() => rootElement('<Delete><Object><Key>x</Key></Object>', 'Delete'))).toBe('MalformedXML');
    expect(code(() => rootElement('<Other/>', 'Delete'))).toBe('MalformedXML');
    expect(code(() => childText('<Key>a &bogus; b</Key>', 'Key'))).toBe('MalformedXML');
    expect(code(() => childText('<Key>a & b</Key>', 'Key'))).toBe('MalformedXML');
    expect(code(() => childText('<Key>a</Key><Key>b</Key>', 'Key'))).toBe('MalformedXML');
  });
});

describe('aws-chunked decoding', () => {
  const decode = async (chunks: string[], decodedLength?: number) => {
    const out: Buffer[] = [];
    for await (const c of decodeAwsChunked((async function* () { for (const c of chunks) yield Buffer.from(c); })(), { signer: undefined, trailer: true, decodedLength })) out.push(c);
    return Buffer.concat(out).toString();
  };
  const body = '5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n';

  it('decodes however the body is split into reads', async () => {
    for (let cut = 1; cut < body.length; cut++) {
      expect(await decode([body.slice(0, cut), body.slice(cut)], 11), `cut at ${cut}`).toBe('hello world');
    }
    expect(await decode(body.split(''))).toBe('hello world');
  });

  it('refuses truncated, oversized or mislabelled bodies', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: S3Error) => e.code);
    expect(await code(decode([body.slice(0, 12)]))).toBe('IncompleteBody');
    expect(await code(decode([body], 12))).toBe('IncompleteBody');
    expect(await code(decode(['5\r\nhello!\r\n0\r\n\r\n']))).toBe('InvalidRequest');
    expect(await code(decode(['zz\r\nhello\r\n']))).toBe('InvalidRequest');
  });
});

describe('object files', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsync-objfile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  async function roundTrip(size: number, metadata: Record<string, string> = {}, split = 64 * 1024) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
    const file = path.join(dir, `o${n++}`);
    const chunks = async function* () { for (let i = 0; i < size; i += split) yield data.subarray(i, i + split); };
    const w = await writeBodyFile<FileHeader & { key: string; metadata: Record<string, string> }>(file, { key: 'k', metadata }, chunks(), { sha256: true });
    expect(w.header.size).toBe(size);
    const f = openBodyFile<typeof w.header>(file, size);
    expect(f.header).toEqual(w.header);
    const parts: Buffer[] = [];
    for await (const c of readBody(f)) parts.push(c);
    await closeBodyFile(f);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    if (size > 8) {
      const g = openBodyFile<typeof w.header>(file, size);
      const mid: Buffer[] = [];
      for await (const c of readBody(g, 3, size - 5)) mid.push(c);
      await closeBodyFile(g);
      expect(Buffer.concat(mid).equals(data.subarray(3, size - 4))).toBe(true);
    }
    expect(readHeader(file)).toEqual(w.header);
  }

  it('stores the header and the body, small, medium and streamed past the in-memory limit', async () => {
    await roundTrip(0);
    await roundTrip(10);
    await roundTrip(100 * 1024);
    await roundTrip(3 * 1024 * 1024 + 17, { big: 'x'.repeat(2000) }, 1000 * 1000);
  });

  it('reads a header larger than the first read', async () => {
    await roundTrip(5, { m: 'y'.repeat(4000) });
  });
});
