/** The S3 server integration tests run against: the embedded one by default, Ceph RGW with S3_BACKEND=rgw (the second tier). */
import { startRgw } from './rgw.js';
import { startEmbeddedS3, type EmbeddedS3, type StartOptions } from './spawn.js';

export async function startTestS3(opts: StartOptions = {}): Promise<EmbeddedS3> {
  const backend = process.env.S3_BACKEND ?? 'embedded';
  if (backend === 'embedded') return startEmbeddedS3(opts);
  // opts.dir is where the embedded server keeps its files; an RGW cluster's directory belongs to the test run, not to a test.
  if (backend === 'rgw') return startRgw({ port: opts.port, bucket: opts.bucket, createBucket: opts.createBucket });
  throw new Error(`S3_BACKEND must be embedded or rgw, not "${backend}"`);
}
