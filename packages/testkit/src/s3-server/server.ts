/**
 * The embedded S3 server: a Node `http` server over the on-disk store. Every request is
 * authenticated (SigV4), routed, and answered with S3's statuses and XML; anything unexpected is a
 * 500 InternalError, logged to stderr, and never takes the process down.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authenticate, parseRawQuery } from './auth.js';
import { validBucketName } from './buckets.js';
import { S3Error } from './errors.js';
import { sendError, type Ctx } from './http.js';
import { parseTarget, route } from './router.js';
import { Store } from './store.js';

export interface S3ServerOptions {
  /** Where buckets and objects live; created if missing, reused with its data if not. */
  directory: string;
  port?: number;
  address?: string;
  /** Buckets to create on start when missing. */
  buckets?: string[];
  /** Accepted credentials. */
  credentials: Array<{ accessKeyId: string; secretAccessKey: string }>;
}

export interface RunningS3Server {
  port: number;
  address: string;
  close(): Promise<void>;
}

export async function startS3Server(opts: S3ServerOptions): Promise<RunningS3Server> {
  const store = await Store.open(opts.directory);
  for (const name of opts.buckets ?? []) {
    if (!validBucketName(name)) throw new Error(`"${name}" is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')`);
    if (!store.get(name)) await store.create(name);
  }
  const secrets = new Map(opts.credentials.map((c) => [c.accessKeyId, c.secretAccessKey]));
  const first = opts.credentials[0]?.accessKeyId ?? '';
  const owner = { id: createHash('sha256').update(first).digest('hex'), displayName: first.toLowerCase() };
  const idPrefix = `${process.pid.toString(16).toUpperCase()}`;
  let seq = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const ctx: Ctx = {
      req, res, store, owner, requestId: `${idPrefix}${(++seq).toString(16).toUpperCase().padStart(10, '0')}`,
      bucket: '', key: '', query: new Map(), payload: { kind: 'unsigned' },
    };
    try {
      const target = parseTarget(req);
      ctx.bucket = target.bucket;
      ctx.key = target.key;
      for (const [k, v] of parseRawQuery(target.rawQuery)) if (!ctx.query.has(k)) ctx.query.set(k, v);
      ctx.payload = authenticate(req, { method: req.method ?? 'GET', rawPath: target.rawPath, rawQuery: target.rawQuery }, secrets);
      await route(ctx)(ctx);
    } catch (err) {
      // A client that went away mid-request (an aborted upload) has nobody left to answer.
      if (res.headersSent || req.socket.destroyed) {
        res.destroy();
        return;
      }
      if (!(err instanceof S3Error)) process.stderr.write(`embedded-s3: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}\n`);
      // A body left unread is discarded by Node once the answer is sent; the connection stays usable.
      sendError(ctx, err instanceof S3Error ? err : new S3Error('InternalError', 500, 'We encountered an internal error. Please try again.'));
    }
  };

  // No limit on a whole request: a large upload on a slow link may take long.
  const server = createServer({ requestTimeout: 0 }, (req, res) => { void handle(req, res); });
  // Idle keep-alive sockets outlive any client's own idle timeout, so a client never sends on a
  // socket the server is closing at that moment (a spurious ECONNRESET).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.address ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    port: addr.port,
    address: addr.address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
