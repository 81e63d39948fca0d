/** Runs s3rver (an S3-compatible server) on loopback in this process. */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import S3rver from 's3rver';

export const EMBEDDED_ACCESS_KEY = 'S3RVER';
export const EMBEDDED_SECRET_KEY = 'S3RVER';

export interface ServeOptions {
  port: number;
  address?: string;
  directory: string;
  buckets?: string[];
}

export async function serveS3(opts: ServeOptions): Promise<{ port: number; close: () => Promise<void> }> {
  mkdirSync(opts.directory, { recursive: true });
  const server = new S3rver({
    port: opts.port,
    address: opts.address ?? '127.0.0.1',
    directory: opts.directory,
    silent: true,
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
  });
  const info = (await server.run()) as AddressInfo;
  return { port: info.port, close: () => server.close() };
}
