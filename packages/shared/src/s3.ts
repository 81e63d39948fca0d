/**
 * The narrow S3 interface the rest of the code uses (`ObjectStore`), and its implementation over
 * @aws-sdk/client-s3. Keeping it narrow lets reliability tests wrap it to inject failures, while
 * integration tests still go over real HTTP to a real server.
 *
 * Retries: the SDK's standard retry strategy (5xx, throttling, timeouts) with exponential backoff;
 * callers do not retry again on top.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand,
  HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand,
  S3Client as S3ClientCtor, type S3Client, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createDirectPut, type Credentials } from './direct-put.js';
import { NETWORK_CODES, SyncError } from './errors.js';
import { CONTROL_DIR, workspaceOfKey } from './paths.js';

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
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Key prefix of the workspaces: a denied request then names the workspace its key belongs to. */
  prefix?: string;
  /** PEM CA certificates an https:// endpoint must chain to, replacing Node's defaults (a private CA). */
  ca?: string;
  /** Development only: accept any certificate (see s3SettingsFor, which logs it). */
  insecureTls?: boolean;
  /** Server-side encryption of every write; for SSE-C also the key every read and copy needs. */
  encryption?: Encryption;
}

/**
 * Server-side encryption. Every write asks for it and checks that the answer confirms it: a server
 * that ignores the request (the embedded test server; Ceph RGW 16 with AES256) is an error, never a silent downgrade.
 */
export type Encryption =
  | { type: 'AES256' }
  | { type: 'aws:kms'; kmsKeyId: string | undefined }
  /** `key`: the 256-bit customer key, base64. */
  | { type: 'SSE-C'; key: string };

export function encryptionLabel(e: Encryption): string {
  return e.type === 'AES256' ? 'SSE-S3 (AES256)' : e.type === 'aws:kms' ? 'SSE-KMS' : 'SSE-C';
}

export interface GetOptions {
  /** Inclusive byte range. */
  range?: { start: number; end: number };
  ifNoneMatch?: string;
  ifMatch?: string;
  signal?: AbortSignal;
  /** Refuse a body larger than this (MANIFEST_INVALID) before reading it: for objects whose format bounds them. */
  maxBytes?: number;
  /**
   * Gives a buffer of at least the announced length to read the body into: the body returned is
   * then a view of it, so a caller that reuses one buffer allocates nothing per GET. Not called
   * when the server announces no length.
   */
  into?: (length: number) => Buffer;
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
  /**
   * Checks that the endpoint answers, the credentials are valid and the bucket exists, needing no
   * permission at all (a per-workspace policy does not grant HeadBucket, which needs s3:ListBucket).
   */
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
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets, ca: settings.ca, rejectUnauthorized: !settings.insecureTls }),
    }),
  };
  if (settings.endpoint) config.endpoint = settings.endpoint;
  if (settings.credentials) config.credentials = settings.credentials;
  return new S3ClientCtor(config);
}

export function createObjectStore(settings: S3Settings, client: S3Client = createS3Client(settings)): ObjectStore {
  const Bucket = settings.bucket;
  const endpointLabel = settings.endpoint ?? `AWS S3 (${settings.region})`;
  const enc = settings.encryption;
  const ctx = { bucket: Bucket, endpoint: endpointLabel, prefix: settings.prefix, encryption: enc };
  const fail = (err: unknown, op: string, key?: string): never => {
    throw translateS3Error(err, { ...ctx, op, key });
  };
  /** How this server wants If-Match on PUT (learnt on the first conditional write that needs it). */
  let ifMatchQuoted = false;
  /** Set once the server answered an encrypted CopyObject with 501 (Ceph RGW 16): copies then go through this process. */
  let copyThrough = false;
  const direct = settings.endpoint ? createDirectPut({
    endpoint: settings.endpoint, bucket: Bucket, region: settings.region, forcePathStyle: settings.forcePathStyle,
    credentials: () => (client.config.credentials as () => Promise<Credentials>)(), ...connectionLimits(settings),
    ca: settings.ca, insecureTls: settings.insecureTls,
  }) : undefined;

  /** Throws unless a write's answer says the object was stored encrypted as asked. */
  const confirm = (echo: { sse?: string | undefined; sseC?: string | undefined }, op: string, key: string) => {
    if (!enc || (enc.type === 'SSE-C' ? echo.sseC === 'AES256' : echo.sse === enc.type)) return;
    throw new SyncError('ENCRYPTION_UNSUPPORTED',
      `${endpointLabel} did not apply ${encryptionLabel(enc)} to ${op} s3://${Bucket}/${key} (its answer does not confirm it): the server does not support it, and stored that object unencrypted`, {
        hint: 'use a server that supports this encryption (docs/security.md lists them), or drop --sse / --sse-c-key-file',
      });
  };

  /**
   * Without s3:ListBucket on the whole bucket, S3 answers a GET or HEAD of a missing key with 403,
   * not 404: a per-workspace policy would make every first push look denied. A listing of the key
   * itself, which that policy allows, tells a missing object from a denied one.
   */
  const missingNotDenied = async (err: unknown, key: string): Promise<boolean> => {
    if (httpStatus(err) !== 403 || CREDENTIAL_ERRORS.has(errorName(err))) return false;
    try {
      const res = await client.send(new ListObjectsV2Command({ Bucket, Prefix: key, MaxKeys: 1 }));
      return res.Contents?.[0]?.Key !== key;
    } catch (listErr) {
      // The listing's answer has a body, a HEAD's has not: bad credentials show up here.
      const e = translateS3Error(listErr, { ...ctx, op: 'LIST', key });
      if (e.code === 'BAD_CREDENTIALS') throw e;
      return false;
    }
  };
  const notFound = (op: string, key: string) => new SyncError('OBJECT_NOT_FOUND', `not found: ${op} s3://${Bucket}/${key}`);

  const store: ObjectStore = {
    bucket: Bucket,
    endpointLabel,

    async get(key, opts = {}) {
      try {
        const res = await client.send(new GetObjectCommand({
          Bucket, Key: key, ...readParams(enc),
          Range: opts.range ? `bytes=${opts.range.start}-${opts.range.end}` : undefined,
          IfNoneMatch: opts.ifNoneMatch ? `"${opts.ifNoneMatch}"` : undefined,
          IfMatch: opts.ifMatch ? `"${opts.ifMatch}"` : undefined,
        }), { abortSignal: opts.signal });
        const body = await readBody(res.Body as Readable, res.ContentLength, `GET s3://${Bucket}/${key}`, opts.maxBytes, opts.into);
        return {
          notModified: false, body, etag: stripEtag(res.ETag),
          size: opts.range ? parseTotalSize(res.ContentRange, body.length) : (res.ContentLength ?? body.length),
          lastModified: res.LastModified, metadata: res.Metadata ?? {}, contentType: res.ContentType,
        };
      } catch (err) {
        if (httpStatus(err) === 304 && opts.ifNoneMatch) return { notModified: true, etag: opts.ifNoneMatch };
        if (await missingNotDenied(err, key)) throw notFound('GET', key);
        return fail(err, 'GET', key);
      }
    },

    async head(key) {
      try {
        const res = await client.send(new HeadObjectCommand({ Bucket, Key: key, ...readParams(enc) }));
        return {
          etag: stripEtag(res.ETag), size: res.ContentLength ?? 0, lastModified: res.LastModified,
          metadata: res.Metadata ?? {}, contentType: res.ContentType,
        };
      } catch (err) {
        if (httpStatus(err) === 404 || await missingNotDenied(err, key)) return undefined;
        return fail(err, 'HEAD', key);
      }
    },

    async put(key, body, opts = {}) {
      const attempt = async (quoted: boolean) => {
        const o = opts.ifMatch ? { ...opts, ifMatch: quoted ? `"${opts.ifMatch}"` : opts.ifMatch } : opts;
        if (direct) {
          const headers = await direct(key, body, { ...putHeaders(o), ...encryptionHeaders(enc) }, o.sha256);
          confirm({ sse: header(headers['x-amz-server-side-encryption']), sseC: header(headers['x-amz-server-side-encryption-customer-algorithm']) }, 'PUT', key);
          return { etag: stripEtag(header(headers.etag)) };
        }
        const res = await client.send(new PutObjectCommand({
          Bucket, Key: key, Body: body, ContentLength: body.length, ContentType: o.contentType,
          Metadata: o.metadata, ContentEncoding: o.contentEncoding, CacheControl: o.cacheControl,
          IfMatch: o.ifMatch, IfNoneMatch: o.ifNoneMatch, ...writeParams(enc),
        }));
        confirm({ sse: res.ServerSideEncryption, sseC: res.SSECustomerAlgorithm }, 'PUT', key);
        return { etag: stripEtag(res.ETag) };
      };
      try {
        return await attempt(ifMatchQuoted);
      } catch (err) {
        if (!(opts.ifMatch && httpStatus(err) === 412)) return fail(err, 'PUT', key);
        // Ceph RGW compares If-Match with the bare ETag, AWS and MinIO accept the quoted form: a 412
        // while the object still has the expected ETag means this server wants the other form.
        if ((await store.head(key))?.etag !== opts.ifMatch) return fail(err, 'PUT', key);
        ifMatchQuoted = !ifMatchQuoted;
        try {
          return await attempt(ifMatchQuoted);
        } catch (again) {
          return fail(again, 'PUT', key);
        }
      }
    },

    async upload(key, body, opts) {
      let etag: string;
      try {
        const up = new Upload({
          client, queueSize: opts.queueSize ?? 4, partSize: opts.partSize, leavePartsOnError: false,
          params: {
            Bucket, Key: key, Body: body, ContentType: opts.contentType, Metadata: opts.metadata, IfNoneMatch: opts.ifNoneMatch,
            ...writeParams(enc),
          },
        });
        etag = stripEtag((await up.done()).ETag);
      } catch (err) {
        return fail(err, 'multipart upload', key);
      }
      // Ceph RGW answers CompleteMultipartUpload with an empty ETag and no encryption headers; HEAD has both.
      if (etag && !enc) return { etag };
      let info;
      try {
        info = await client.send(new HeadObjectCommand({ Bucket, Key: key, ...readParams(enc) }));
      } catch (err) {
        return fail(err, 'HEAD', key);
      }
      confirm({ sse: info.ServerSideEncryption, sseC: info.SSECustomerAlgorithm }, 'multipart upload', key);
      return { etag: etag || stripEtag(info.ETag) };
    },

    async copy(sourceKey, destKey, opts = {}) {
      const what = `${sourceKey} -> ${destKey}`;
      if (!copyThrough) {
        try {
          const res = await client.send(new CopyObjectCommand({
            Bucket, Key: destKey, CopySource: `${Bucket}/${encodeURIComponent(sourceKey).replace(/%2F/g, '/')}`,
            MetadataDirective: opts.metadata ? 'REPLACE' : 'COPY', Metadata: opts.metadata, ContentType: opts.contentType,
            CopySourceIfMatch: opts.sourceIfMatch ? `"${opts.sourceIfMatch}"` : undefined,
            ...writeParams(enc), ...copySourceParams(enc),
          }));
          confirm({ sse: res.ServerSideEncryption, sseC: res.SSECustomerAlgorithm }, 'COPY', destKey);
          return { etag: stripEtag(res.CopyObjectResult?.ETag) };
        } catch (err) {
          // Ceph RGW 16 cannot copy encrypted objects (501); the bytes then pass through here, still encrypted at rest.
          if (!(enc && httpStatus(err) === 501)) return fail(err, 'COPY', what);
          copyThrough = true;
        }
      }
      let res;
      try {
        res = await client.send(new GetObjectCommand({
          Bucket, Key: sourceKey, IfMatch: opts.sourceIfMatch ? `"${opts.sourceIfMatch}"` : undefined, ...readParams(enc),
        }));
      } catch (err) {
        return fail(err, 'COPY', what);
      }
      const body = res.Body as Readable;
      if (opts.sourceIfMatch && stripEtag(res.ETag) !== opts.sourceIfMatch) {
        body.destroy();
        throw new SyncError('PRECONDITION_FAILED', `object changed underneath: COPY s3://${Bucket}/${what}`);
      }
      return store.upload(destKey, body, {
        contentType: opts.contentType ?? res.ContentType, metadata: opts.metadata ?? res.Metadata, partSize: COPY_PART_SIZE, queueSize: 1,
      });
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
          if (errorName(err) !== 'AccessDenied') return fail(err, 'DeleteObjects', batch[0]);
          // Ceph RGW 16 authorises DeleteObjects against the bucket itself: a policy granting
          // s3:DeleteObject on a workspace's keys only is refused the batch, not the single deletes.
          for (let j = 0; j < batch.length; j += SINGLE_DELETES_AT_ONCE) {
            await Promise.all(batch.slice(j, j + SINGLE_DELETES_AT_ONCE).map(async (Key) => {
              try {
                await client.send(new DeleteObjectCommand({ Bucket, Key }));
              } catch (one) {
                if (httpStatus(one) === 404) return;
                if (httpStatus(one) !== 403) fail(one, 'DELETE', Key);
                failed.push({ key: Key, message: translateS3Error(one, { ...ctx, op: 'DELETE', key: Key }).message });
              }
            }));
          }
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
      // A key no writer uses (workspace names never start with "."): its GET answers 404, or 403
      // AccessDenied without permission, for valid credentials and a bucket that exists.
      const probe = `${settings.prefix ?? ''}${CONTROL_DIR}/.heads/.probe`;
      try {
        await (await client.send(new GetObjectCommand({ Bucket, Key: probe }))).Body?.transformToByteArray();
      } catch (err) {
        const name = errorName(err);
        if (name === 'NoSuchKey' || name === 'AccessDenied') return;
        fail(err, 'HEAD bucket');
      }
    },

    async createBucket() {
      try {
        await client.send(new CreateBucketCommand({ Bucket }));
      } catch (err) {
        const name = errorName(err);
        if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
        fail(err, 'CreateBucket');
      }
    },
  };
  return store;
}

/** Large enough for few parts, small enough that copies running side by side stay within memory. */
const COPY_PART_SIZE = 8 * 1024 ** 2;
const SINGLE_DELETES_AT_ONCE = 16;

function writeParams(enc: Encryption | undefined) {
  if (!enc) return {};
  if (enc.type === 'SSE-C') return { SSECustomerAlgorithm: 'AES256', SSECustomerKey: enc.key };
  return { ServerSideEncryption: enc.type, SSEKMSKeyId: enc.type === 'aws:kms' ? enc.kmsKeyId : undefined };
}

function readParams(enc: Encryption | undefined) {
  return enc?.type === 'SSE-C' ? { SSECustomerAlgorithm: 'AES256', SSECustomerKey: enc.key } : {};
}

function copySourceParams(enc: Encryption | undefined) {
  return enc?.type === 'SSE-C' ? { CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: enc.key } : {};
}

/** writeParams as headers, for the direct PUT. */
function encryptionHeaders(enc: Encryption | undefined): Record<string, string> {
  if (!enc) return {};
  if (enc.type === 'SSE-C') {
    return {
      'x-amz-server-side-encryption-customer-algorithm': 'AES256',
      'x-amz-server-side-encryption-customer-key': enc.key,
      'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(Buffer.from(enc.key, 'base64')).digest('base64'),
    };
  }
  const h: Record<string, string> = { 'x-amz-server-side-encryption': enc.type };
  if (enc.type === 'aws:kms' && enc.kmsKeyId) h['x-amz-server-side-encryption-aws-kms-key-id'] = enc.kmsKeyId;
  return h;
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
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


interface ErrorContext {
  op: string;
  bucket: string;
  key?: string | undefined;
  endpoint: string;
  /** The workspaces' key prefix: a 403 then names the workspace of the key. */
  prefix?: string | undefined;
  encryption?: Encryption | undefined;
}

/** Names S3 gives credentials it does not accept (as opposed to valid credentials lacking permission). */
const CREDENTIAL_ERRORS: ReadonlySet<string> = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'InvalidSecurity']);

function errorName(err: unknown): string {
  const e = err as { name?: string; Code?: string };
  return e?.name ?? e?.Code ?? '';
}

/**
 * A GET's body in one buffer, copied once: into a buffer of the announced length as it arrives
 * (the SDK's byte-array helper copies twice more, which costs a big read more CPU than the wire).
 * A body larger than `maxBytes` is refused: from the announced length, or as it arrives without one.
 */
async function readBody(
  stream: Readable, length: number | undefined, what: string, maxBytes: number | undefined, into: ((length: number) => Buffer) | undefined,
): Promise<Buffer> {
  if (length === undefined) {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      // Leaving the loop destroys the stream.
      refuseLarger(what, total, maxBytes);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }
  let out: Buffer;
  try {
    // Refused from the announced length, before a byte is read.
    refuseLarger(what, length, maxBytes);
    const given = into?.(length);
    // Never the shared pool: cached bodies would pin its slabs.
    out = given && given.length >= length ? given.subarray(0, length) : Buffer.allocUnsafeSlow(length);
  } catch (err) {
    // The body is never read: its socket is not left waiting.
    stream.destroy();
    throw err;
  }
  let at = 0;
  let over = false;
  for await (const chunk of stream) {
    const c = chunk as Buffer;
    // Leaving the loop destroys the stream.
    if (at + c.length > length) { over = true; break; }
    c.copy(out, at);
    at += c.length;
  }
  if (over || at !== length) {
    throw new SyncError('ENDPOINT_UNREACHABLE', `${what}: the body does not have the ${length} bytes announced (got ${over ? 'more' : at})`, {
      hint: 'a proxy or the network cut the answer; retry',
    });
  }
  return out;
}

/** Throws MANIFEST_INVALID when an object is larger than its format allows (`max` undefined: no bound). */
export function refuseLarger(what: string, size: number, max: number | undefined): void {
  if (max === undefined || size <= max) return;
  throw new SyncError('MANIFEST_INVALID', `${what}: the object is ${size} bytes, more than the ${max} it may be`, {
    hint: 'the bucket holds a damaged or foreign object; push the workspace again to write a fresh commit',
  });
}

/** Maps SDK and socket errors to the coded errors users see. The one place that reads SDK error names. */
export function translateS3Error(err: unknown, ctx: ErrorContext): SyncError {
  if (err instanceof SyncError) return err;
  const e = err as { name?: string; code?: string; message?: string; Code?: string };
  const name = errorName(err);
  const message = e.message ?? '';
  const status = httpStatus(err);
  const what = ctx.key ? `${ctx.op} s3://${ctx.bucket}/${ctx.key}` : `${ctx.op} s3://${ctx.bucket}`;
  const tls = findCode(err, isTlsVerifyCode);
  if (tls) {
    return new SyncError('TLS_UNTRUSTED', `the TLS certificate of ${ctx.endpoint} does not verify (${tls.code}: ${tls.message}) during ${what}`, {
      hint: 'give the CA that signed it with --ca-bundle FILE (or AWS_CA_BUNDLE, NODE_EXTRA_CA_CERTS); verification is never turned off silently', cause: err,
    });
  }
  if (findCode(err, (c) => c === 'EPROTO')) {
    return new SyncError('ENDPOINT_UNREACHABLE', `TLS handshake with ${ctx.endpoint} failed during ${what}: does it serve https on that port?`, {
      hint: 'check the scheme and port of --endpoint / S3_ENDPOINT', cause: err,
    });
  }
  const networkCode = e.code && NETWORK_CODES.has(e.code) ? e.code : findCode(err, (c) => NETWORK_CODES.has(c))?.code;
  if (networkCode || name === 'TimeoutError' || name === 'RequestTimeout' || /socket hang up|timed out/i.test(message)) {
    return new SyncError('ENDPOINT_UNREACHABLE', `cannot reach S3 endpoint ${ctx.endpoint} (${networkCode ?? name ?? 'timeout'}) during ${what}`, {
      hint: 'check --endpoint / S3_ENDPOINT and that the server is running and reachable', cause: err,
    });
  }
  const encryptionError = translateEncryptionError(err, ctx, what);
  if (encryptionError) return encryptionError;
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return new SyncError('BAD_CREDENTIALS', `no S3 credentials found for ${ctx.endpoint}`, {
      hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE', cause: err,
    });
  }
  if (CREDENTIAL_ERRORS.has(name)) {
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
    const workspace = ctx.key !== undefined && ctx.prefix !== undefined ? workspaceOfKey(ctx.prefix, ctx.key) : undefined;
    if (workspace !== undefined) {
      const reads = /^(GET|HEAD|LIST)/.test(ctx.op);
      return new SyncError('ACCESS_DENIED', `access denied to workspace ${workspace}: ${what}`, {
        hint: `these credentials may not ${reads ? 'read' : 'write'} workspace ${workspace}; docs/security.md has the policy each process needs`, cause: err,
      });
    }
    return new SyncError('ACCESS_DENIED', `access denied: ${what}`, {
      hint: 'the credentials work but lack permission for this bucket or prefix; docs/security.md has the policy each process needs', cause: err,
    });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new SyncError('OBJECT_NOT_FOUND', `not found: ${what}`, { cause: err });
  }
  // 409 ConditionalRequestConflict: AWS's answer to two conditional writes of one key at once.
  if (name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412 || (status === 409 && /conditional/i.test(name))) {
    return new SyncError('PRECONDITION_FAILED', `object changed underneath: ${what}`, { cause: err });
  }
  return new SyncError('S3_ERROR', `${what} failed: ${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${message}`.trim(), {
    hint: 'retry; if it persists, check the server logs', cause: err,
  });
}

/**
 * Encryption failures, as AWS and Ceph RGW word them: an object encrypted with a customer key read
 * without it (or with another), a KMS key that cannot be used, and encryption the server refuses.
 */
function translateEncryptionError(err: unknown, ctx: ErrorContext, what: string): SyncError | undefined {
  const name = errorName(err);
  const message = (err as { message?: string }).message ?? '';
  const status = httpStatus(err);
  const keyHint = 'give the key the objects were written with: --sse-c-key-file FILE (S3_SSE_C_KEY_FILE)';
  if (status === 400 && /customer provided key|MD5 hash of the key|stored using a form of Server Side Encryption/i.test(message)) {
    const which = ctx.encryption?.type === 'SSE-C' ? 'another key than the one in --sse-c-key-file' : 'a customer key (SSE-C), and none was given';
    return new SyncError('ENCRYPTION_KEY', `${what}: the object is encrypted with ${which}`, { hint: keyHint, cause: err });
  }
  const enc = ctx.encryption;
  if (!enc) return undefined;
  if (/kms/i.test(message) && (status === 400 || status === 403)) {
    return new SyncError('ENCRYPTION_KEY', `the KMS key could not be used for ${what}: ${message}`, {
      hint: 'check --sse-kms-key-id, that the server has a KMS with that key (Ceph RGW: rgw crypt s3 kms backend) and that these credentials may use it (AWS: kms:GenerateDataKey, kms:Decrypt)', cause: err,
    });
  }
  if (status === 501 || (status === 400 && (name === 'InvalidRequest' || name === 'InvalidArgument' || name === 'NotImplemented'))) {
    return new SyncError('ENCRYPTION_UNSUPPORTED', `${ctx.endpoint} refused ${encryptionLabel(enc)} for ${what} (${name || `HTTP ${status}`}${message && message !== 'UnknownError' ? `: ${message}` : ''})`, {
      hint: 'Ceph RGW encrypts only over https, and SSE-KMS only with a KMS configured; docs/security.md lists what each server supports', cause: err,
    });
  }
  return undefined;
}

/** OpenSSL's certificate verification codes as Node reports them, and Node's host name check. */
function isTlsVerifyCode(code: string): boolean {
  return /^(UNABLE_TO_|CERT_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT|INVALID_CA|PATH_LENGTH_EXCEEDED|INVALID_PURPOSE|HOSTNAME_MISMATCH|ERR_TLS_CERT_ALTNAME)/.test(code);
}

/** The first code in the error, its causes or its sub-errors (AggregateError) that matches. */
function findCode(err: unknown, match: (code: string) => boolean): { code: string; message: string } | undefined {
  const seen: unknown[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && seen.length < 20) {
    const cur = queue.shift();
    if (!cur || typeof cur !== 'object' || seen.includes(cur)) continue;
    seen.push(cur);
    const { code, message, cause, errors } = cur as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === 'string' && match(code)) return { code, message: typeof message === 'string' ? message : code };
    queue.push(cause);
    if (Array.isArray(errors)) for (const e of errors as unknown[]) queue.push(e);
  }
  return undefined;
}
