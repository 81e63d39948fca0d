/**
 * The narrow S3 interface the rest of the code uses (`ObjectStore`), and its implementation over
 * @aws-sdk/client-s3. Keeping it narrow lets reliability tests wrap it to inject failures, while
 * integration tests still go over real HTTP to a real server.
 *
 * Retries: the SDK's standard retry strategy (5xx, throttling, timeouts) with exponential backoff;
 * callers do not retry again on top.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, DeleteObjectsCommand, GetObjectCommand,
  HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand,
  S3Client as S3ClientCtor, type S3Client, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createDirectPut, type Credentials } from './direct-put.js';
import { NETWORK_CODES, SyncError } from './errors.js';

export interface S3Settings {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  forcePathStyle: boolean;
  /** Sockets kept open; size it to the caller's concurrency. */
  maxSockets?: number;
  /**
   * Per-attempt limit in ms, enforced (not merely logged): to connect, to the response headers, and
   * for any silence while a body streams. A server that accepts connections and never answers is
   * an error after this, never a hang.
   */
  requestTimeoutMs?: number;
  /** Attempts per request (the first included); with requestTimeoutMs this bounds how long any call can take. */
  maxAttempts?: number;
  /** Explicit credentials (tools and tests); the CLIs leave this unset and use the standard AWS chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export interface GetOptions {
  /** Inclusive byte range. */
  range?: { start: number; end: number };
  ifNoneMatch?: string;
  ifMatch?: string;
  signal?: AbortSignal;
}

export interface ObjectInfo {
  etag: string;
  size: number;
  lastModified: Date | undefined;
  metadata: Record<string, string>;
  contentType: string | undefined;
}

export type GetResult = ({ notModified: false; body: Buffer } & ObjectInfo) | { notModified: true; etag: string };

export interface PutOptions {
  contentType?: string;
  metadata?: Record<string, string>;
  contentEncoding?: string;
  cacheControl?: string;
  /** Hex sha256 of the body when the caller has it (put only): spares hashing it again to sign. */
  sha256?: string;
  /** Write only if the object's current ETag is this one (optimistic concurrency); PRECONDITION_FAILED otherwise. */
  ifMatch?: string;
  /** Write only if no object exists at the key; PRECONDITION_FAILED otherwise. */
  ifNoneMatch?: '*';
}

export interface CopyOptions {
  contentType?: string;
  /** Replaces the source's metadata (MetadataDirective REPLACE); absent: the source's is copied. */
  metadata?: Record<string, string>;
  /** Copy only if the source's current ETag is this one (x-amz-copy-source-if-match); PRECONDITION_FAILED otherwise. */
  sourceIfMatch?: string;
}

/** A multipart upload that was started and neither completed nor aborted. */
export interface UploadInfo { key: string; uploadId: string; initiated: Date | undefined }

export interface ListEntry { key: string; etag: string; size: number; lastModified: Date | undefined }

export interface ObjectStore {
  readonly bucket: string;
  readonly endpointLabel: string;
  get(key: string, opts?: GetOptions): Promise<GetResult>;
  /** undefined when the object does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  put(key: string, body: Buffer, opts?: PutOptions): Promise<{ etag: string }>;
  /**
   * Multipart upload of a stream (lib-storage), for large files. If the stream errors (the caller's
   * check before the end failed), the upload is aborted: nothing ever completes at `key`.
   */
  upload(key: string, body: Readable, opts: Omit<PutOptions, 'ifMatch' | 'sha256'> & { partSize: number; queueSize?: number }): Promise<{ etag: string }>;
  copy(sourceKey: string, destKey: string, opts?: CopyOptions): Promise<{ etag: string }>;
  /** Deletes in batches of 1000; missing keys are not errors. Returns keys that failed. */
  deleteMany(keys: readonly string[]): Promise<{ failed: Array<{ key: string; message: string }> }>;
  list(prefix: string, opts?: { delimiter?: string; startAfter?: string }): AsyncIterable<ListEntry | { commonPrefix: string }>;
  /** Multipart uploads in progress under `prefix` (abandoned ones are swept with abortUpload). */
  listUploads(prefix: string): AsyncIterable<UploadInfo>;
  abortUpload(key: string, uploadId: string): Promise<void>;
  headBucket(): Promise<void>;
  createBucket(): Promise<void>;
}

export function stripEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/"/g, '');
}

/**
 * Defaults: 8 s of silence fails an attempt and 5 attempts with backoff bound a call to under a
 * minute, so a push against a silent endpoint ends with a clear error rather than hanging.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 8_000;
export const DEFAULT_MAX_ATTEMPTS = 5;
/** Backstop for a whole request that keeps trickling bytes (a large part on a slow link may take long). */
const WHOLE_REQUEST_LIMIT_MS = 15 * 60_000;

/** The settings' connection limits with their defaults: the SDK client and the direct PUT use the same. */
function connectionLimits(settings: S3Settings): { maxSockets: number; requestTimeoutMs: number; maxAttempts: number } {
  return {
    maxSockets: settings.maxSockets ?? 64,
    requestTimeoutMs: settings.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    maxAttempts: settings.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
  };
}

export function createS3Client(settings: S3Settings): S3Client {
  // Node 20 is this project's supported runtime; the SDK's notice about its future versions would
  // print on every CLI run.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { maxSockets, requestTimeoutMs, maxAttempts } = connectionLimits(settings);
  const config: S3ClientConfig = {
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    maxAttempts,
    retryMode: 'standard',
    // Streams without a length and servers that do not know the newer checksum headers (Ceph 16)
    // break with the SDK's default of always sending checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      connectionTimeout: Math.min(3_000, requestTimeoutMs),
      // Silence is what a stuck server looks like: the socket's idle limit catches it before the
      // response and while a body streams; the whole-request limit must throw, not just log.
      socketTimeout: requestTimeoutMs,
      requestTimeout: WHOLE_REQUEST_LIMIT_MS,
      throwOnRequestTimeout: true,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
    }),
  };
  if (settings.endpoint) config.endpoint = settings.endpoint;
  if (settings.credentials) config.credentials = settings.credentials;
  return new S3ClientCtor(config);
}

export function createObjectStore(settings: S3Settings, client: S3Client = createS3Client(settings)): ObjectStore {
  const Bucket = settings.bucket;
  const endpointLabel = settings.endpoint ?? `AWS S3 (${settings.region})`;
  const fail = (err: unknown, op: string, key?: string): never => {
    throw translateS3Error(err, { op, bucket: Bucket, key, endpoint: endpointLabel });
  };
  /** How this server wants If-Match on PUT (learnt on the first conditional write that needs it). */
  let ifMatchQuoted = false;
  const direct = settings.endpoint ? createDirectPut({
    endpoint: settings.endpoint, bucket: Bucket, region: settings.region, forcePathStyle: settings.forcePathStyle,
    credentials: () => (client.config.credentials as () => Promise<Credentials>)(), ...connectionLimits(settings),
  }) : undefined;

  return {
    bucket: Bucket,
    endpointLabel,

    async get(key, opts = {}) {
      try {
        const res = await client.send(new GetObjectCommand({
          Bucket, Key: key,
          Range: opts.range ? `bytes=${opts.range.start}-${opts.range.end}` : undefined,
          IfNoneMatch: opts.ifNoneMatch ? `"${opts.ifNoneMatch}"` : undefined,
          IfMatch: opts.ifMatch ? `"${opts.ifMatch}"` : undefined,
        }), { abortSignal: opts.signal });
        const body = Buffer.from(await res.Body!.transformToByteArray());
        return {
          notModified: false, body, etag: stripEtag(res.ETag),
          size: opts.range ? parseTotalSize(res.ContentRange, body.length) : (res.ContentLength ?? body.length),
          lastModified: res.LastModified, metadata: res.Metadata ?? {}, contentType: res.ContentType,
        };
      } catch (err) {
        if (httpStatus(err) === 304 && opts.ifNoneMatch) return { notModified: true, etag: opts.ifNoneMatch };
        return fail(err, 'GET', key);
      }
    },

    async head(key) {
      try {
        const res = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
        return {
          etag: stripEtag(res.ETag), size: res.ContentLength ?? 0, lastModified: res.LastModified,
          metadata: res.Metadata ?? {}, contentType: res.ContentType,
        };
      } catch (err) {
        if (httpStatus(err) === 404) return undefined;
        return fail(err, 'HEAD', key);
      }
    },

    async put(key, body, opts = {}) {
      const attempt = async (quoted: boolean) => {
        const o = opts.ifMatch ? { ...opts, ifMatch: quoted ? `"${opts.ifMatch}"` : opts.ifMatch } : opts;
        if (direct) return { etag: stripEtag(await direct(key, body, putHeaders(o), o.sha256)) };
        const res = await client.send(new PutObjectCommand({
          Bucket, Key: key, Body: body, ContentLength: body.length, ContentType: o.contentType,
          Metadata: o.metadata, ContentEncoding: o.contentEncoding, CacheControl: o.cacheControl,
          IfMatch: o.ifMatch, IfNoneMatch: o.ifNoneMatch,
        }));
        return { etag: stripEtag(res.ETag) };
      };
      try {
        return await attempt(ifMatchQuoted);
      } catch (err) {
        if (!(opts.ifMatch && httpStatus(err) === 412)) return fail(err, 'PUT', key);
        // Ceph RGW compares If-Match with the bare ETag, AWS and MinIO accept the quoted form: a 412
        // while the object still has the expected ETag means this server wants the other form.
        if ((await this.head(key))?.etag !== opts.ifMatch) return fail(err, 'PUT', key);
        ifMatchQuoted = !ifMatchQuoted;
        try {
          return await attempt(ifMatchQuoted);
        } catch (again) {
          return fail(again, 'PUT', key);
        }
      }
    },

    async upload(key, body, opts) {
      try {
        const up = new Upload({
          client, queueSize: opts.queueSize ?? 4, partSize: opts.partSize, leavePartsOnError: false,
          params: {
            Bucket, Key: key, Body: body, ContentType: opts.contentType, Metadata: opts.metadata, IfNoneMatch: opts.ifNoneMatch,
          },
        });
        const res = await up.done();
        let etag = stripEtag(res.ETag);
        // Ceph RGW answers CompleteMultipartUpload with an empty ETag; HEAD has the real one.
        if (!etag) etag = (await this.head(key))?.etag ?? '';
        return { etag };
      } catch (err) {
        return fail(err, 'multipart upload', key);
      }
    },

    async copy(sourceKey, destKey, opts = {}) {
      try {
        const res = await client.send(new CopyObjectCommand({
          Bucket, Key: destKey, CopySource: `${Bucket}/${encodeURIComponent(sourceKey).replace(/%2F/g, '/')}`,
          MetadataDirective: opts.metadata ? 'REPLACE' : 'COPY', Metadata: opts.metadata, ContentType: opts.contentType,
          CopySourceIfMatch: opts.sourceIfMatch ? `"${opts.sourceIfMatch}"` : undefined,
        }));
        return { etag: stripEtag(res.CopyObjectResult?.ETag) };
      } catch (err) {
        return fail(err, 'COPY', `${sourceKey} -> ${destKey}`);
      }
    },

    async deleteMany(keys) {
      const failed: Array<{ key: string; message: string }> = [];
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        try {
          const res = await client.send(new DeleteObjectsCommand({
            Bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }));
          for (const e of res.Errors ?? []) {
            if (e.Code !== 'NoSuchKey') failed.push({ key: e.Key ?? '?', message: `${e.Code}: ${e.Message}` });
          }
        } catch (err) {
          return fail(err, 'DeleteObjects', batch[0]);
        }
      }
      return { failed };
    },

    async *list(prefix, opts = {}) {
      let ContinuationToken: string | undefined;
      do {
        let res;
        try {
          res = await client.send(new ListObjectsV2Command({
            Bucket, Prefix: prefix, Delimiter: opts.delimiter, ContinuationToken,
            StartAfter: ContinuationToken ? undefined : opts.startAfter,
          }));
        } catch (err) {
          return fail(err, 'LIST', prefix);
        }
        for (const p of res.CommonPrefixes ?? []) if (p.Prefix) yield { commonPrefix: p.Prefix };
        for (const o of res.Contents ?? []) {
          if (o.Key) yield { key: o.Key, etag: stripEtag(o.ETag), size: o.Size ?? 0, lastModified: o.LastModified };
        }
        ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
    },

    async *listUploads(prefix) {
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      do {
        let res;
        try {
          res = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix: prefix, KeyMarker, UploadIdMarker }));
        } catch (err) {
          return fail(err, 'ListMultipartUploads', prefix);
        }
        for (const u of res.Uploads ?? []) {
          if (u.Key && u.UploadId) yield { key: u.Key, uploadId: u.UploadId, initiated: u.Initiated };
        }
        const more = res.IsTruncated && (res.NextKeyMarker || res.NextUploadIdMarker);
        KeyMarker = more ? res.NextKeyMarker : undefined;
        UploadIdMarker = more ? res.NextUploadIdMarker : undefined;
      } while (KeyMarker !== undefined || UploadIdMarker !== undefined);
    },

    async abortUpload(key, uploadId) {
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId: uploadId }));
      } catch (err) {
        // Already completed or aborted: nothing is left to clean up.
        if (httpStatus(err) === 404) return;
        fail(err, 'AbortMultipartUpload', key);
      }
    },

    async headBucket() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (err) {
        fail(err, 'HEAD bucket');
      }
    },

    async createBucket() {
      try {
        await client.send(new CreateBucketCommand({ Bucket }));
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
        fail(err, 'CreateBucket');
      }
    },
  };
}

function putHeaders(opts: PutOptions): Record<string, string> {
  const h: Record<string, string> = {};
  if (opts.contentType) h['content-type'] = opts.contentType;
  if (opts.contentEncoding) h['content-encoding'] = opts.contentEncoding;
  if (opts.cacheControl) h['cache-control'] = opts.cacheControl;
  if (opts.ifMatch) h['if-match'] = opts.ifMatch;
  if (opts.ifNoneMatch) h['if-none-match'] = opts.ifNoneMatch;
  for (const [k, v] of Object.entries(opts.metadata ?? {})) h[`x-amz-meta-${k.toLowerCase()}`] = v;
  return h;
}

function parseTotalSize(contentRange: string | undefined, fallback: number): number {
  const m = /\/(\d+)$/.exec(contentRange ?? '');
  return m ? Number(m[1]) : fallback;
}

export function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}


interface ErrorContext { op: string; bucket: string; key?: string | undefined; endpoint: string }

/** Maps SDK and socket errors to the coded errors users see. The one place that reads SDK error names. */
export function translateS3Error(err: unknown, ctx: ErrorContext): SyncError {
  if (err instanceof SyncError) return err;
  const e = err as { name?: string; code?: string; message?: string; Code?: string };
  const name = e.name ?? e.Code ?? '';
  const status = httpStatus(err);
  const what = ctx.key ? `${ctx.op} s3://${ctx.bucket}/${ctx.key}` : `${ctx.op} s3://${ctx.bucket}`;
  const networkCode = e.code && NETWORK_CODES.has(e.code) ? e.code : findCause(err);
  if (networkCode || name === 'TimeoutError' || name === 'RequestTimeout' || /socket hang up|timed out/i.test(e.message ?? '')) {
    return new SyncError('ENDPOINT_UNREACHABLE', `cannot reach S3 endpoint ${ctx.endpoint} (${networkCode ?? name ?? 'timeout'}) during ${what}`, {
      hint: 'check --endpoint / S3_ENDPOINT and that the server is running and reachable', cause: err,
    });
  }
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
    return new SyncError('BAD_CREDENTIALS', `no S3 credentials found for ${ctx.endpoint}`, {
      hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE', cause: err,
    });
  }
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'InvalidSecurity'].includes(name)) {
    return new SyncError('BAD_CREDENTIALS', `S3 rejected the credentials (${name}) during ${what}`, {
      hint: 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for this endpoint', cause: err,
    });
  }
  if (name === 'NoSuchBucket' || (status === 404 && ctx.op.includes('bucket'))) {
    return new SyncError('BUCKET_NOT_FOUND', `bucket "${ctx.bucket}" does not exist at ${ctx.endpoint}`, {
      hint: 'create it (sync-agent push --create-bucket does), or choose another with --bucket / S3_BUCKET', cause: err,
    });
  }
  if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
    return new SyncError('ACCESS_DENIED', `access denied: ${what}`, {
      hint: 'the credentials work but lack permission for this bucket or prefix', cause: err,
    });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new SyncError('OBJECT_NOT_FOUND', `not found: ${what}`, { cause: err });
  }
  // 409 ConditionalRequestConflict: AWS's answer to two conditional writes of one key at once.
  if (name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412 || (status === 409 && /conditional/i.test(name))) {
    return new SyncError('PRECONDITION_FAILED', `object changed underneath: ${what}`, { cause: err });
  }
  return new SyncError('S3_ERROR', `${what} failed: ${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? ''}`.trim(), {
    hint: 'retry; if it persists, check the server logs', cause: err,
  });
}

function findCause(err: unknown): string | undefined {
  let cur = (err as { cause?: unknown })?.cause;
  for (let i = 0; cur && i < 5; i++) {
    const code = (cur as { code?: string }).code;
    if (code && NETWORK_CODES.has(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  const errors = (err as { errors?: unknown[] })?.errors;
  if (Array.isArray(errors)) {
    for (const sub of errors) {
      const code = (sub as { code?: string }).code;
      if (code && NETWORK_CODES.has(code)) return code;
    }
  }
  return undefined;
}
