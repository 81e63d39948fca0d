/**
 * ListObjects (V1 and V2) over a bucket's sorted keys: prefix, delimiter, markers and pages in
 * UTF-8 byte order, the way S3 pages: a common prefix counts as one entry, and a listing resumed
 * after a marker never repeats a common prefix at or before the marker.
 */
import { invalidArgument } from './errors.js';
import { isoDate, sendXml, type Ctx } from './http.js';
import { compareKeys, type SortedKeys } from './key-order.js';
import type { ObjectHeader } from './store.js';
import { el, xmlDocument } from './xml.js';

export interface ListRequest {
  prefix: string;
  delimiter: string;
  /** List entries strictly after this one (a key or a common prefix). */
  marker: string;
  maxKeys: number;
}

export interface ListPage {
  keys: string[];
  commonPrefixes: string[];
  truncated: boolean;
  /** The last entry (key or common prefix) of the page. */
  last: string | undefined;
}

export function listKeys(keys: SortedKeys, r: ListRequest): ListPage {
  const page: ListPage = { keys: [], commonPrefixes: [], truncated: false, last: undefined };
  let i = keys.lowerBound(r.prefix);
  if (r.marker && compareKeys(r.marker, r.prefix) >= 0) i = keys.upperBound(r.marker);
  let count = 0;
  for (let key = keys.at(i); key !== undefined && key.startsWith(r.prefix); key = keys.at(i)) {
    const d = r.delimiter ? key.indexOf(r.delimiter, r.prefix.length) : -1;
    const entry = d < 0 ? key : key.slice(0, d + r.delimiter.length);
    if (d >= 0 && r.marker && compareKeys(entry, r.marker) <= 0) {
      // The marker lies inside this common prefix: it was listed before.
      i = keys.pastPrefix(entry);
      continue;
    }
    if (count === r.maxKeys) {
      // max-keys=0 asks for nothing, not for a page of nothing with more to come.
      page.truncated = count > 0;
      break;
    }
    if (d < 0) {
      page.keys.push(key);
      i++;
    } else {
      page.commonPrefixes.push(entry);
      i = keys.pastPrefix(entry);
    }
    page.last = entry;
    count++;
  }
  return page;
}

/** max-keys (or max-uploads, max-parts): 0-1000, default 1000; larger values mean 1000, as in S3. */
export function maxParam(ctx: Ctx, name: string): number {
  const v = ctx.query.get(name);
  if (v === undefined || v === '') return 1000;
  if (!/^\d+$/.test(v)) throw invalidArgument(`Provided ${name} not an integer or within integer range`, name, v);
  return Math.min(1000, Number(v));
}

/** encoding-type: only `url`, which percent-encodes keys and prefixes in the answer. */
export function encoder(ctx: Ctx): { type: string | undefined; enc: (s: string) => string } {
  const type = ctx.query.get('encoding-type');
  if (type === undefined || type === '') return { type: undefined, enc: (s) => s };
  if (type !== 'url') throw invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', type);
  return { type, enc: urlEncode };
}

/** Keys as S3 url-encodes them in listings: `/` kept, everything else outside `A-Za-z0-9-_.~` escaped. */
function urlEncode(s: string): string {
  return encodeURIComponent(s).replace(/%2F/g, '/').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function contents(ctx: Ctx, keys: string[], objects: Map<string, ObjectHeader>, enc: (s: string) => string, owner: boolean): string {
  const who = owner ? ownerXml(ctx) : '';
  return keys.map((k) => {
    const o = objects.get(k)!;
    return `<Contents>${el('Key', enc(k))}${el('LastModified', isoDate(o.lastModified))}${el('ETag', `"${o.etag}"`)}${el('Size', o.size)}${who}<StorageClass>STANDARD</StorageClass></Contents>`;
  }).join('');
}

function prefixes(list: string[], enc: (s: string) => string): string {
  return list.map((p) => `<CommonPrefixes>${el('Prefix', enc(p))}</CommonPrefixes>`).join('');
}

export function listObjectsV1(ctx: Ctx): void {
  const bucket = ctx.store.need(ctx.bucket);
  const { type, enc } = encoder(ctx);
  const r: ListRequest = {
    prefix: ctx.query.get('prefix') ?? '', delimiter: ctx.query.get('delimiter') ?? '', marker: ctx.query.get('marker') ?? '', maxKeys: maxParam(ctx, 'max-keys'),
  };
  const page = listKeys(bucket.keys, r);
  const xml = xmlDocument('ListBucketResult',
    el('Name', bucket.name) + el('Prefix', enc(r.prefix)) + el('Marker', enc(r.marker))
    + (page.truncated && r.delimiter ? el('NextMarker', enc(page.last!)) : '')
    + el('MaxKeys', r.maxKeys) + (r.delimiter ? el('Delimiter', enc(r.delimiter)) : '') + el('IsTruncated', page.truncated)
    + (type ? el('EncodingType', type) : '')
    + contents(ctx, page.keys, bucket.objects, enc, true) + prefixes(page.commonPrefixes, enc));
  sendXml(ctx, xml);
}

const TOKEN_TAG = 'v1:';

export function listObjectsV2(ctx: Ctx): void {
  const bucket = ctx.store.need(ctx.bucket);
  const { type, enc } = encoder(ctx);
  const token = ctx.query.get('continuation-token');
  const startAfter = ctx.query.get('start-after') ?? '';
  let marker = startAfter;
  if (token !== undefined) {
    const decoded = Buffer.from(token, 'base64url').toString('utf8');
    if (!token || !decoded.startsWith(TOKEN_TAG)) throw invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
    marker = decoded.slice(TOKEN_TAG.length);
  }
  const r: ListRequest = { prefix: ctx.query.get('prefix') ?? '', delimiter: ctx.query.get('delimiter') ?? '', marker, maxKeys: maxParam(ctx, 'max-keys') };
  const page = listKeys(bucket.keys, r);
  const xml = xmlDocument('ListBucketResult',
    el('Name', bucket.name) + el('Prefix', enc(r.prefix)) + el('MaxKeys', r.maxKeys)
    + (r.delimiter ? el('Delimiter', enc(r.delimiter)) : '') + el('IsTruncated', page.truncated)
    + el('KeyCount', page.keys.length + page.commonPrefixes.length)
    + (token !== undefined ? el('ContinuationToken', token) : '')
    + (page.truncated ? el('NextContinuationToken', Buffer.from(TOKEN_TAG + page.last!).toString('base64url')) : '')
    + (startAfter ? el('StartAfter', enc(startAfter)) : '')
    + (type ? el('EncodingType', type) : '')
    + contents(ctx, page.keys, bucket.objects, enc, ctx.query.get('fetch-owner') === 'true') + prefixes(page.commonPrefixes, enc));
  sendXml(ctx, xml);
}

/** The owner of everything, as listings and ACLs name it. */
export function ownerXml(ctx: Ctx, tag = 'Owner'): string {
  return `<${tag}>${el('ID', ctx.owner.id)}${el('DisplayName', ctx.owner.displayName)}</${tag}>`;
}
