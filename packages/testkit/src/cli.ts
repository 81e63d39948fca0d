/**
 * `embedded-s3 [--port N] [--dir D] [--bucket B]...`: an S3 server on 127.0.0.1 for the demo, tests
 * and benchmarks. Prints one line `ready http://127.0.0.1:PORT` once it answers; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { serveS3 } from './server.js';

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv.slice(2),
    options: {
      port: { type: 'string', default: '0' },
      dir: { type: 'string', default: '.tmp/s3' },
      bucket: { type: 'string', multiple: true, default: [] },
      address: { type: 'string', default: '127.0.0.1' },
    },
  });
  const server = await serveS3({ port: Number(values.port), directory: values.dir, buckets: values.bucket, address: values.address });
  process.stdout.write(`ready http://${values.address}:${server.port}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // Keep-alive sockets would hold close() open; the process is ending anyway.
  process.exit(0);
}
