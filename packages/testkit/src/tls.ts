/**
 * TLS for tests: a private CA with certificates made by openssl, and a TLS-terminating proxy on
 * loopback that puts https:// in front of any http:// S3 endpoint (the embedded server has no TLS).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { createServer } from 'node:tls';

export interface TestPki {
  dir: string;
  /** The private CA that signs `cert`: what --ca-bundle is given. */
  ca: string;
  /** A certificate for 127.0.0.1 and localhost, signed by `ca`, and its key. */
  cert: string;
  key: string;
  /** Signed by `ca` for another name only (wrong.example): a host name mismatch. */
  wrongNameCert: string;
  wrongNameKey: string;
  /** A second CA, which signed nothing the servers present: trusting it alone must fail. */
  otherCa: string;
}

/** Makes a CA and server certificates under `dir` (about a second of openssl). */
export function createTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const f = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const makeCa = (name: string, cn: string) => openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const makeCert = (name: string, san: string) => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`]);
    writeFileSync(f(`${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`),
      '-days', '2', '-extfile', f(`${name}.ext`)]);
  };
  makeCa('ca', 'workspace-sync test CA');
  makeCa('other-ca', 'an unrelated CA');
  makeCert('server', 'IP:127.0.0.1,DNS:localhost');
  makeCert('wrong-name', 'DNS:wrong.example');
  return {
    dir, ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key'),
    wrongNameCert: f('wrong-name.pem'), wrongNameKey: f('wrong-name.key'), otherCa: f('other-ca.pem'),
  };
}

export interface TlsProxy {
  /** https://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** TLS connections accepted so far (handshakes that completed). */
  readonly connections: number;
  close(): Promise<void>;
}

/** Terminates TLS on loopback with `cert`/`key` and passes the bytes to `target` (http://host:port). */
export async function startTlsProxy(target: string, opts: { cert: string; key: string }): Promise<TlsProxy> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer({ cert: readFileSync(opts.cert), key: readFileSync(opts.key) }, (client) => {
    connections++;
    const upstream = connect(Number(t.port), t.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      // A reset on either side ends both; the test sees what the client library makes of it.
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
  // Handshakes a client refuses (the point of several tests) are not the proxy's errors.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `https://127.0.0.1:${port}`,
    port,
    get connections() { return connections; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
