/** Runs the embedded S3 server (src/s3-server/) on loopback in this process. */
import { startS3Server } from './s3-server/server.js';

/** The embedded server's one set of credentials (fixed, so tests, the demo and tools can be pointed at it). */
export const EMBEDDED_ACCESS_KEY = 'S3RVER';
export const EMBEDDED_SECRET_KEY = 'S3RVER';

export interface ServeOptions {
  port: number;
  address?: string;
  directory: string;
  buckets?: string[];
}

export async function serveS3(opts: ServeOptions): Promise<{ port: number; close: () => Promise<void> }> {
  const server = await startS3Server({
    directory: opts.directory, port: opts.port, address: opts.address ?? '127.0.0.1', buckets: opts.buckets,
    credentials: [{ accessKeyId: EMBEDDED_ACCESS_KEY, secretAccessKey: EMBEDDED_SECRET_KEY }],
  });
  return { port: server.port, close: () => server.close() };
}
