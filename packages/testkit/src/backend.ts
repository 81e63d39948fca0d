/** The S3 server integration tests run against: s3rver by default, Ceph RGW with S3_BACKEND=rgw (the second tier). */
import { startRgw } from './rgw.js';
import { startEmbeddedS3, type EmbeddedS3, type StartOptions } from './spawn.js';

export async function startTestS3(opts: StartOptions = {}): Promise<EmbeddedS3> {
  const backend = process.env.S3_BACKEND ?? 's3rver';
  if (backend === 's3rver') return startEmbeddedS3(opts);
  // opts.dir is where s3rver keeps its files; an RGW cluster's directory belongs to the test run, not to a test.
  if (backend === 'rgw') return startRgw({ port: opts.port, bucket: opts.bucket, createBucket: opts.createBucket });
  throw new Error(`S3_BACKEND must be s3rver or rgw, not "${backend}"`);
}
