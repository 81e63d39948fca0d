// Stands in for docker/minio/create-bucket.sh (whose `mc` image cannot be pulled here): creates
// S3_BUCKET at S3_ENDPOINT with the CLIs' variables, succeeding when the bucket already exists.
// Runs in a container from the repository, bind-mounted read-only at its own path.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { S3Client, CreateBucketCommand } = createRequire(path.join(repo, 'packages/shared/package.json'))('@aws-sdk/client-s3');

const { S3_ENDPOINT: endpoint, S3_BUCKET: bucket, AWS_REGION: region = 'us-east-1' } = process.env;
if (!endpoint || !bucket) {
  console.error('create-bucket: set S3_ENDPOINT and S3_BUCKET');
  process.exit(2);
}
const s3 = new S3Client({ endpoint, region, forcePathStyle: true });
try {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  console.log(`create-bucket: created ${bucket} at ${endpoint}`);
} catch (err) {
  if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') {
    console.error(`create-bucket: creating ${bucket} at ${endpoint} failed: ${err.name}: ${err.message}`);
    process.exit(1);
  }
  console.log(`create-bucket: ${bucket} already exists at ${endpoint}`);
}
