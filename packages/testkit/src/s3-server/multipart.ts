/** Multipart uploads: Create, UploadPart(Copy), Complete, Abort, ListParts, ListMultipartUploads. */
import { createHash } from 'node:crypto';
import { checkCopySource, parseCopyRange, writeCheck } from './conditions.js';
import { S3Error, invalidArgument, malformedXml, noSuchKey } from './errors.js';
import { bodySource, contentMd5, declaredLength, isoDate, readSmallBody, send, sendXml, verifyBody, type Ctx } from './http.js';
import { compareKeys } from './key-order.js';
import { encoder, maxParam, ownerXml } from './listing.js';
import { closeBodyFile, readBody } from './object-file.js';
import { attributesFrom, checkKey, copySource } from './objects.js';
import type { PartHeader, Upload } from './store.js';
import { childText, children, el, rootElement, xmlDocument } from './xml.js';

const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PART_BYTES = 5 * 1024 ** 3;
const MAX_PARTS = 10_000;

export async function createUpload(ctx: Ctx): Promise<void> {
  checkKey(ctx.key);
  const bucket = ctx.store.need(ctx.bucket);
  const upload = await bucket.createUpload(ctx.key, attributesFrom(ctx.req.headers));
  sendXml(ctx, xmlDocument('InitiateMultipartUploadResult', el('Bucket', bucket.name) + el('Key', ctx.key) + el('UploadId', upload.uploadId)));
}

function partNumber(ctx: Ctx): number {
  const v = ctx.query.get('partNumber') ?? '';
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_PARTS) throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber', v);
  return n;
}

export async function uploadPart(ctx: Ctx): Promise<void> {
  const bucket = ctx.store.need(ctx.bucket);
  const n = partNumber(ctx);
  const upload = bucket.upload(ctx.query.get('uploadId')!, ctx.key);
  const length = declaredLength(ctx);
  if (length === undefined && ctx.payload.kind !== 'chunked') throw new S3Error('MissingContentLength', 411, 'You must provide the Content-Length HTTP header.');
  if (length !== undefined && length > MAX_PART_BYTES) throw new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size');
  const md5 = contentMd5(ctx);
  const written = await bucket.writePart(n, bodySource(ctx), { sha256: ctx.payload.kind === 'sha256' });
  try {
    verifyBody(ctx, written, md5);
  } catch (err) {
    await bucket.discard(written);
    throw err;
  }
  const part = await bucket.commitPart(upload, written);
  send(ctx, 200, { etag: `"${part.etag}"` });
}

export async function uploadPartCopy(ctx: Ctx): Promise<void> {
  const bucket = ctx.store.need(ctx.bucket);
  const n = partNumber(ctx);
  const upload = bucket.upload(ctx.query.get('uploadId')!, ctx.key);
  const src = copySource(ctx);
  const f = src.bucket.open(src.key);
  if (!f) throw noSuchKey(src.key);
  let written;
  try {
    checkCopySource(ctx.req.headers, f.header);
    const rangeHeader = ctx.req.headers['x-amz-copy-source-range'];
    const range = typeof rangeHeader === 'string' ? parseCopyRange(rangeHeader, f.header.size) : { start: 0, end: f.header.size - 1 };
    written = await bucket.writePart(n, readBody(f, range.start, range.end));
  } finally {
    await closeBodyFile(f);
  }
  const part = await bucket.commitPart(upload, written);
  sendXml(ctx, xmlDocument('CopyPartResult', el('LastModified', isoDate(part.lastModified)) + el('ETag', `"${part.etag}"`)));
}

export async function completeUpload(ctx: Ctx): Promise<void> {
  const bucket = ctx.store.need(ctx.bucket);
  const uploadId = ctx.query.get('uploadId')!;
  bucket.upload(uploadId, ctx.key);
  const check = writeCheck(ctx.req.headers, ctx.key);
  const doc = rootElement((await readSmallBody(ctx)).toString('utf8'), 'CompleteMultipartUpload');
  const requested = children(doc, 'Part').map((p) => {
    const num = childText(p, 'PartNumber');
    const etag = childText(p, 'ETag');
    if (num === undefined || etag === undefined || !/^\d+$/.test(num.trim())) throw malformedXml();
    return { partNumber: Number(num.trim()), etag: etag.trim().replace(/^"(.*)"$/, '$1') };
  });
  if (requested.length === 0) throw malformedXml();
  const select = (u: Upload) => {
    const parts: PartHeader[] = [];
    for (const [i, r] of requested.entries()) {
      if (i > 0 && r.partNumber <= requested[i - 1]!.partNumber) {
        throw new S3Error('InvalidPartOrder', 400, 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
      }
      const p = u.parts.get(r.partNumber);
      if (!p || p.etag !== r.etag) {
        throw new S3Error('InvalidPart', 400, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.", {
          UploadId: uploadId, PartNumber: String(r.partNumber), ETag: r.etag,
        });
      }
      parts.push(p);
    }
    for (const p of parts.slice(0, -1)) {
      if (p.size < MIN_PART_BYTES) {
        throw new S3Error('EntityTooSmall', 400, 'Your proposed upload is smaller than the minimum allowed object size.', {
          ProposedSize: String(p.size), MinSizeAllowed: String(MIN_PART_BYTES), PartNumber: String(p.partNumber), ETag: p.etag,
        });
      }
    }
    const md5s = Buffer.concat(parts.map((p) => Buffer.from(p.etag, 'hex')));
    return { parts, etag: `${createHash('md5').update(md5s).digest('hex')}-${parts.length}` };
  };
  const obj = await bucket.completeUpload(uploadId, ctx.key, select, check);
  const location = `http://${ctx.req.headers.host ?? 'localhost'}/${bucket.name}/${encodeURIComponent(ctx.key).replace(/%2F/g, '/')}`;
  sendXml(ctx, xmlDocument('CompleteMultipartUploadResult', el('Location', location) + el('Bucket', bucket.name) + el('Key', ctx.key) + el('ETag', `"${obj.etag}"`)));
}

export async function abortUpload(ctx: Ctx): Promise<void> {
  await ctx.store.need(ctx.bucket).abortUpload(ctx.query.get('uploadId')!, ctx.key);
  send(ctx, 204);
}

export function listParts(ctx: Ctx): void {
  const bucket = ctx.store.need(ctx.bucket);
  const upload = bucket.upload(ctx.query.get('uploadId')!, ctx.key);
  const max = maxParam(ctx, 'max-parts');
  const markerText = ctx.query.get('part-number-marker') ?? '0';
  if (!/^\d+$/.test(markerText)) throw invalidArgument('Provided part-number-marker not an integer or within integer range', 'part-number-marker', markerText);
  const marker = Number(markerText);
  const all = [...upload.parts.values()].filter((p) => p.partNumber > marker).sort((a, b) => a.partNumber - b.partNumber);
  const page = all.slice(0, max);
  const truncated = all.length > page.length;
  const parts = page.map((p) => `<Part>${el('PartNumber', p.partNumber)}${el('LastModified', isoDate(p.lastModified))}${el('ETag', `"${p.etag}"`)}${el('Size', p.size)}</Part>`).join('');
  sendXml(ctx, xmlDocument('ListPartsResult',
    el('Bucket', bucket.name) + el('Key', upload.key) + el('UploadId', upload.uploadId)
    + ownerXml(ctx, 'Initiator') + ownerXml(ctx) + el('StorageClass', 'STANDARD')
    + el('PartNumberMarker', marker) + el('NextPartNumberMarker', page.at(-1)?.partNumber ?? marker)
    + el('MaxParts', max) + el('IsTruncated', truncated) + parts));
}

/**
 * In progress uploads in key order (UTF-8 bytes), then upload id order (which is start order: ids
 * begin with the time). key-marker alone resumes after that key's uploads; with upload-id-marker,
 * after that upload.
 */
export function listUploads(ctx: Ctx): void {
  const bucket = ctx.store.need(ctx.bucket);
  const { type, enc } = encoder(ctx);
  const prefix = ctx.query.get('prefix') ?? '';
  const delimiter = ctx.query.get('delimiter') ?? '';
  const keyMarker = ctx.query.get('key-marker') ?? '';
  const idMarker = keyMarker ? ctx.query.get('upload-id-marker') ?? '' : '';
  const max = maxParam(ctx, 'max-uploads');
  const sorted = [...bucket.uploads.values()]
    .filter((u) => u.key.startsWith(prefix))
    .sort((a, b) => compareKeys(a.key, b.key) || (a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0))
    .filter((u) => {
      const c = compareKeys(u.key, keyMarker);
      return c > 0 || (c === 0 && idMarker !== '' && u.uploadId > idMarker);
    });
  const uploads: Upload[] = [];
  const prefixes: string[] = [];
  let truncated = false;
  let nextKey = '';
  let nextId = '';
  for (const u of sorted) {
    const d = delimiter ? u.key.indexOf(delimiter, prefix.length) : -1;
    const cp = d < 0 ? undefined : u.key.slice(0, d + delimiter.length);
    // A prefix already listed on this page, or on one before (the key marker is at or after it).
    if (cp !== undefined && (prefixes.at(-1) === cp || (keyMarker && compareKeys(cp, keyMarker) <= 0))) continue;
    if (uploads.length + prefixes.length === max) {
      truncated = true;
      break;
    }
    if (cp !== undefined) {
      prefixes.push(cp);
      nextKey = cp;
      nextId = '';
    } else {
      uploads.push(u);
      nextKey = u.key;
      nextId = u.uploadId;
    }
  }
  const items = uploads.map((u) => `<Upload>${el('Key', enc(u.key))}${el('UploadId', u.uploadId)}${ownerXml(ctx, 'Initiator')}${ownerXml(ctx)}${el('StorageClass', 'STANDARD')}${el('Initiated', isoDate(u.initiated))}</Upload>`).join('');
  sendXml(ctx, xmlDocument('ListMultipartUploadsResult',
    el('Bucket', bucket.name) + el('KeyMarker', enc(keyMarker)) + el('UploadIdMarker', idMarker)
    + el('NextKeyMarker', enc(truncated ? nextKey : '')) + el('NextUploadIdMarker', truncated ? nextId : '')
    + (delimiter ? el('Delimiter', enc(delimiter)) : '') + el('Prefix', enc(prefix)) + el('MaxUploads', max) + el('IsTruncated', truncated)
    + (type ? el('EncodingType', type) : '') + items
    + prefixes.map((p) => `<CommonPrefixes>${el('Prefix', enc(p))}</CommonPrefixes>`).join('')));
}
