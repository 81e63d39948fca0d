/**
 * https:// endpoints with a private CA, over the wire: a TLS-terminating proxy on loopback in front of
 * the test server (the embedded one, or Ceph RGW with S3_BACKEND=rgw), with certificates made by openssl. The
 * CA is trusted through --ca-bundle, AWS_CA_BUNDLE or NODE_EXTRA_CA_CERTS; a certificate that does not
 * verify is refused before a single request is sent, and only an explicit, logged opt-out accepts it.
 * Ceph RGW's own TLS frontend is covered by encryption.int.test.ts.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, startTestS3, startTlsProxy, type EmbeddedS3, type TestPki, type TlsProxy } from '@workspace-sync/testkit';
import { listKeys, storeFor } from '../helpers.js';
import { errorLines, scratch, startMountCli, type Scratch } from './helpers.js';

let s3: EmbeddedS3;
let pki: TestPki;
let proxy: TlsProxy;
let wrongName: TlsProxy;
let t: Scratch;

beforeAll(async () => {
  s3 = await startTestS3();
  t = scratch('tls');
  pki = createTestPki(path.join(t.base, 'pki'));
  proxy = await startTlsProxy(s3.endpoint, { cert: pki.cert, key: pki.key });
  wrongName = await startTlsProxy(s3.endpoint, { cert: pki.wrongNameCert, key: pki.wrongNameKey });
  const files: Record<string, string> = {};
  for (let i = 0; i < 40; i++) files[`src/f${i}.ts`] = `export const f${i} = ${i};\n`;
  t.write('app', { ...files, 'README.md': '# app\n' });
});

afterAll(async () => {
  await proxy?.close();
  await wrongName?.close();
  await s3?.stop();
  t?.remove();
});

const via = (p: TlsProxy, env: Record<string, string> = {}) => ({ ...s3.env, S3_ENDPOINT: p.endpoint, ...env });

describe('TLS to a private endpoint', () => {
  it('refuses a certificate from an unknown CA with a clear error, before sending anything', async () => {
    const r = await t.agent(['push', 'app'], via(proxy), 'refused');
    expect(r.code).toBe(3);
    expect(errorLines(r)).toMatch(/^error: the TLS certificate of https:\/\/127\.0\.0\.1:\d+ does not verify \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    expect(errorLines(r)).toMatch(/hint: give the CA that signed it with --ca-bundle FILE/);
    expect(await listKeys(storeFor(s3))).toEqual([]);
  });

  it('pushes through --ca-bundle, over the SDK and the direct PUT alike', async () => {
    const r = await t.agent(['push', 'app', '--ca-bundle', pki.ca, '--json'], via(proxy), 'flag');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).totals.uploaded).toBe(41);
    expect(await listKeys(storeFor(s3), 'app/')).toHaveLength(41);
  });

  it.each([
    ['AWS_CA_BUNDLE (the AWS convention)', { AWS_CA_BUNDLE: 'CA' }],
    ['S3_CA_BUNDLE', { S3_CA_BUNDLE: 'CA' }],
    ['NODE_EXTRA_CA_CERTS (added to the system CAs by Node)', { NODE_EXTRA_CA_CERTS: 'CA' }],
  ])('trusts the CA given by %s', async (_name, env) => {
    const withCa = Object.fromEntries(Object.entries(env).map(([k]) => [k, pki.ca]));
    const r = await t.agent(['push', 'app', '--json'], via(proxy, withCa), `env-${Object.keys(env)[0]}`);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(true);
  });

  it('replaces the system CAs with the bundle: a bundle of another CA refuses the endpoint', async () => {
    const r = await t.agent(['push', 'app'], via(proxy, { AWS_CA_BUNDLE: pki.otherCa }), 'other-ca');
    expect(r.code).toBe(3);
    expect(errorLines(r)).toMatch(/does not verify/);
  });

  it('refuses a certificate for another host name, even from the trusted CA', async () => {
    const r = await t.agent(['push', 'app'], via(wrongName, { S3_CA_BUNDLE: pki.ca }), 'wrong-name');
    expect(r.code).toBe(3);
    expect(errorLines(r)).toMatch(/does not verify \(ERR_TLS_CERT_ALTNAME_INVALID: Hostname\/IP does not match/);
  });

  it('says so when the bundle is unreadable or holds no certificate', async () => {
    const missing = await t.agent(['push', 'app', '--ca-bundle', '/no/such/ca.pem'], via(proxy), 'missing');
    expect(missing.code).toBe(2);
    expect(errorLines(missing)).toMatch(/^error: cannot read the CA bundle \/no\/such\/ca\.pem \(ENOENT\)/);
    const notPem = await t.agent(['push', 'app', '--ca-bundle', pki.key], via(proxy), 'not-pem');
    expect(notPem.code).toBe(2);
    expect(errorLines(notPem)).toMatch(/holds no PEM certificate/);
  });

  it('ignores the bundle for a plain http:// endpoint (this machine sets AWS_CA_BUNDLE globally)', async () => {
    const r = await t.agent(['push', 'app', '--json'], { ...s3.env, AWS_CA_BUNDLE: '/no/such/bundle.pem' }, 'plain');
    expect(r.code, r.stderr).toBe(0);
  });

  it('accepts any certificate only when told to, and warns loudly every time', async () => {
    const r = await t.agent(['push', 'app', '--json'], via(wrongName, { S3_INSECURE_SKIP_TLS_VERIFY: 'true' }), 'insecure');
    expect(r.code, r.stderr).toBe(0);
    const warning = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string })
      .find((l) => /verification is OFF/.test(l.msg));
    expect(warning?.level).toBe(40);
    expect(warning?.msg).toMatch(/Development only/);
  });

  it('mounts over TLS with the private CA, and refuses to start without it', async () => {
    const refused = await startMountCli(t.base, via(proxy)).then(async (m) => { await m.stop(); return undefined; }, (e: { code: number; stderr: string }) => e);
    expect(refused?.code).toBe(3);
    expect(refused?.stderr).toMatch(/the TLS certificate of https:\/\/127\.0\.0\.1:\d+ does not verify/);
    const mount = await startMountCli(t.base, via(proxy, { S3_CA_BUNDLE: pki.ca }));
    try {
      const { readFile } = await import('node:fs/promises');
      expect(await readFile(path.join(mount.mnt, 'app/src/f7.ts'), 'utf8')).toBe('export const f7 = 7;\n');
      expect(await readFile(path.join(mount.mnt, 'app/README.md'), 'utf8')).toBe('# app\n');
    } finally {
      await mount.stop();
    }
  });
});
