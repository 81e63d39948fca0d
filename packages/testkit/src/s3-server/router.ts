/**
 * From a request to an operation: the bucket and key (path-style `/bucket/key`, or virtual-host
 * style `bucket.localhost`), then the operation by method and subresource, as S3 dispatches.
 */
import type { IncomingMessage } from 'node:http';
import { abortUpload, completeUpload, createUpload, listParts, listUploads, uploadPart, uploadPartCopy } from './multipart.js';
import { createBucket, deleteBucket, deleteObjects, getAcl, getBucketLocation, getBucketVersioning, headBucket, listBuckets } from './buckets.js';
import { S3Error, noSuchKey, notImplemented } from './errors.js';
import { send, type Ctx } from './http.js';
import { listObjectsV1, listObjectsV2 } from './listing.js';
import { copyObject, deleteObject, getObject, putObject } from './objects.js';

export interface Target { bucket: string; key: string; rawPath: string; rawQuery: string }

const VHOST_SUFFIX = '.localhost';

export function parseTarget(req: IncomingMessage): Target {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI', 400, "Couldn't parse the specified URI.");
  const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
  let bucket: string;
  let key: string;
  if (host.endsWith(VHOST_SUFFIX) && host.length > VHOST_SUFFIX.length) {
    bucket = host.slice(0, -VHOST_SUFFIX.length);
    key = rawPath.slice(1);
  } else {
    const slash = rawPath.indexOf('/', 1);
    bucket = slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash);
    key = slash < 0 ? '' : rawPath.slice(slash + 1);
  }
  try {
    return { bucket: decodeURIComponent(bucket), key: decodeURIComponent(key), rawPath, rawQuery };
  } catch {
    throw new S3Error('InvalidURI', 400, "Couldn't parse the specified URI.");
  }
}

/** Subresources some clients probe that this server does not keep: 501, as for any S3 feature off. */
const UNSUPPORTED = [
  'policy', 'cors', 'lifecycle', 'tagging', 'website', 'logging', 'notification', 'replication', 'encryption', 'object-lock',
  'ownershipControls', 'publicAccessBlock', 'requestPayment', 'accelerate', 'analytics', 'inventory', 'metrics',
  'intelligent-tiering', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes', 'policyStatus', 'versions',
];

type Handler = (ctx: Ctx) => void | Promise<void>;

export function route(ctx: Ctx): Handler {
  const { method } = ctx.req;
  const q = ctx.query;
  const unsupported = UNSUPPORTED.find((s) => q.has(s));
  if (unsupported) return () => { throw notImplemented(`?${unsupported}`); };
  if (!ctx.bucket) {
    if (method === 'GET') return listBuckets;
    return methodNotAllowed;
  }
  if (!ctx.key) {
    switch (method) {
      case 'GET':
        if (q.has('location')) return getBucketLocation;
        if (q.has('versioning')) return getBucketVersioning;
        if (q.has('acl')) return (c) => { c.store.need(c.bucket); getAcl(c); };
        if (q.has('uploads')) return listUploads;
        return q.get('list-type') === '2' ? listObjectsV2 : listObjectsV1;
      case 'HEAD': return headBucket;
      case 'PUT':
        if (q.has('acl')) return acceptAcl;
        if (q.has('versioning')) return () => { throw notImplemented('?versioning'); };
        return createBucket;
      case 'DELETE': return deleteBucket;
      case 'POST':
        if (q.has('delete')) return deleteObjects;
        return () => { throw notImplemented('POST object uploads'); };
      default: return methodNotAllowed;
    }
  }
  const copy = ctx.req.headers['x-amz-copy-source'] !== undefined;
  switch (method) {
    case 'GET':
      if (q.has('uploadId')) return listParts;
      if (q.has('acl')) return (c) => { if (!c.store.need(c.bucket).objects.has(c.key)) throw noSuchKey(c.key); getAcl(c); };
      return getObject;
    case 'HEAD': return getObject;
    case 'PUT':
      if (q.has('uploadId') || q.has('partNumber')) return copy ? uploadPartCopy : uploadPart;
      if (q.has('acl')) return acceptAcl;
      return copy ? copyObject : putObject;
    case 'POST':
      if (q.has('uploads')) return createUpload;
      if (q.has('uploadId')) return completeUpload;
      return () => { throw notImplemented('POST on an object'); };
    case 'DELETE':
      return q.has('uploadId') ? abortUpload : deleteObject;
    default: return methodNotAllowed;
  }
}

function methodNotAllowed(ctx: Ctx): void {
  throw new S3Error('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.', { Method: ctx.req.method ?? '', ResourceType: ctx.key ? 'OBJECT' : 'BUCKET' });
}

/** PUT ?acl: every object here is private to its one owner; canned private ACLs are accepted as no-ops. */
function acceptAcl(ctx: Ctx): void {
  ctx.store.need(ctx.bucket);
  const acl = ctx.req.headers['x-amz-acl'];
  if (acl !== undefined && acl !== 'private') throw notImplemented(`x-amz-acl: ${String(acl)}`);
  send(ctx, 200);
}
