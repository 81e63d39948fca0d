/**
 * `embedded-s3 [--port N] [--dir D] [--bucket B]... [--address A]`: an S3 server for the demo, tests
 * and benchmarks. Prints one line `ready http://ADDRESS:PORT` once it answers; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY, serveS3 } from './server.js';

const USAGE = `Usage: embedded-s3 [options]

An S3-compatible server on this machine (for tests, the demo and benchmarks; not for production).
Prints "ready http://ADDRESS:PORT" on stdout once it answers; SIGINT or SIGTERM stop it.

Options:
  --port N        port to listen on (default 0: any free port, printed on the ready line)
  --dir DIR       where buckets and objects are kept (default .tmp/s3); data there is reused
  --bucket NAME   create this bucket on start unless it exists (repeatable)
  --address ADDR  address to listen on (default 127.0.0.1)
  -h, --help      print this help

Credentials (SigV4, any region): access key ${EMBEDDED_ACCESS_KEY}, secret key ${EMBEDDED_SECRET_KEY}.
Addressing: path-style (http://127.0.0.1:PORT/BUCKET/KEY) or virtual-host (http://BUCKET.localhost:PORT/KEY).
Example:
  AWS_ACCESS_KEY_ID=${EMBEDDED_ACCESS_KEY} AWS_SECRET_ACCESS_KEY=${EMBEDDED_SECRET_KEY} aws --endpoint-url http://127.0.0.1:PORT s3 ls
`;

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv.slice(2),
      options: {
        port: { type: 'string', default: '0' },
        dir: { type: 'string', default: '.tmp/s3' },
        bucket: { type: 'string', multiple: true, default: [] },
        address: { type: 'string', default: '127.0.0.1' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`embedded-s3: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`embedded-s3: --port must be a number from 0 to 65535, not "${values.port}"\n`);
    return 2;
  }
  let server;
  try {
    server = await serveS3({ port, directory: values.dir, buckets: values.bucket, address: values.address });
  } catch (err) {
    process.stderr.write(`embedded-s3: cannot start on ${values.address}:${port} with data in ${values.dir}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`ready http://${values.address}:${server.port}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // Keep-alive sockets would hold close() open; the process is ending anyway.
  process.exit(0);
}
