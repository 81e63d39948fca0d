/**
 * Encryption at rest over the wire. A server that does not apply the encryption asked for is an
 * error, never a silent downgrade: s3rver ignores the headers, Ceph RGW 16 ignores SSE-S3 and
 * refuses encryption over plain http. On the RGW tier, a gateway with its own TLS frontend and
 * RGW's testing KMS backend runs SSE-C (the agent and the mount both hold the key; packs are read by
 * range, blobs by If-Match) and SSE-KMS end to end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore, type Encryption, type ObjectStore } from '@workspace-sync/shared';
import {
  createTestPki, startRgw, startTestS3, startTlsProxy, type EmbeddedS3, type RgwGateway, type TestPki, type TlsProxy,
} from '@workspace-sync/testkit';
import { BACKEND, errorLines, scratch, startMountCli, type Scratch } from './helpers.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const rgw = BACKEND === 'rgw';

function keyFile(dir: string, name: string, key = randomBytes(32)): { file: string; key: string } {
  const file = path.join(dir, name);
  writeFileSync(file, key);
  chmodSync(file, 0o600);
  return { file, key: key.toString('base64') };
}

describe(`encryption refused by a server that does not apply it (${BACKEND})`, () => {
  let s3: EmbeddedS3;
  let t: Scratch;
  let pki: TestPki;
  let proxy: TlsProxy;

  beforeAll(async () => {
    s3 = await startTestS3();
    t = scratch('sse-refused');
    pki = createTestPki(path.join(t.base, 'pki'));
    proxy = await startTlsProxy(s3.endpoint, { cert: pki.cert, key: pki.key });
    t.write('app', { 'a.txt': 'a\n', 'b.txt': 'b\n' });
  });
  afterAll(async () => {
    await proxy?.close();
    await s3?.stop();
    t?.remove();
  });
  const https = () => ({ ...s3.env, S3_ENDPOINT: proxy.endpoint, S3_CA_BUNDLE: pki.ca });

  it.each([
    ['SSE-S3', { S3_SSE: 'AES256' }, 'SSE-S3 \\(AES256\\)'],
    ['SSE-KMS', { S3_SSE_KMS_KEY_ID: 'alias/workspaces' }, 'SSE-KMS'],
    ['SSE-C', { S3_SSE_C_KEY_FILE: 'KEY' }, 'SSE-C'],
  ])('%s: exit 3 and a clear error, nothing committed', async (name, env, label) => {
    const withKey = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === 'KEY' ? keyFile(t.base, 'c.key').file : v]));
    const r = await t.agent(['push', 'app'], { ...https(), ...withKey }, `state-${name}`);
    expect(r.code).toBe(3);
    // s3rver answers as if it had encrypted; Ceph RGW behind a TLS proxy sees plain http and refuses.
    const expected = rgw ? `refused ${label} for PUT` : `did not apply ${label} to PUT s3://${s3.bucket}/`;
    expect(errorLines(r)).toMatch(new RegExp(`^error: https://127\\.0\\.0\\.1:\\d+ ${expected}`));
    const owner = createObjectStore({
      endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
      credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
    });
    expect(await owner.head('.sync/.heads/app')).toBeUndefined();
  });

  it('refuses SSE-C over plain http before sending anything: the key would travel in clear', async () => {
    const r = await t.agent(['push', 'app', '--sse-c-key-file', keyFile(t.base, 'd.key').file], s3.env, 'state-http');
    expect(r.code).toBe(2);
    expect(errorLines(r)).toMatch(/^error: --sse-c-key-file needs an https:\/\/ endpoint, not http:\/\/127\.0\.0\.1:\d+: SSE-C sends the key with every request/);
  });
});

describe.runIf(rgw)('encryption on Ceph RGW (its TLS frontend, the testing KMS backend)', () => {
  let s3: RgwGateway;
  let t: Scratch;
  let pki: TestPki;
  let sseC: { file: string; key: string };
  const big = randomBytes(6 * 1024 * 1024 + 11);
  const blob = randomBytes(400 * 1024);
  const storeWith = (encryption?: Encryption): ObjectStore => createObjectStore({
    endpoint: s3.httpsEndpoint!, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxAttempts: 1, ca: readFileSync(pki.ca, 'utf8'),
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! }, ...(encryption ? { encryption } : {}),
  });
  const env = (more: Record<string, string> = {}) => ({
    ...s3.env, S3_ENDPOINT: s3.httpsEndpoint!, S3_CA_BUNDLE: pki.ca, SYNC_MULTIPART_THRESHOLD: '5M', ...more,
  });

  beforeAll(async () => {
    t = scratch('sse-rgw');
    pki = createTestPki(path.join(t.base, 'pki'));
    s3 = await startRgw({
      tls: { cert: pki.cert, key: pki.key },
      args: ['--rgw-crypt-s3-kms-backend=testing', `--rgw-crypt-s3-kms-encryption-keys=testkey-1=${randomBytes(32).toString('base64')}`],
    });
    sseC = keyFile(t.base, 'customer.key');
    const small: Record<string, string> = {};
    for (let i = 0; i < 40; i++) small[`src/s${i}.ts`] = `export const s${i} = ${i};\n`;
    t.write('secret', { ...small, 'assets/blob.bin': blob, 'assets/big.bin': big });
    t.write('kms', { 'a.txt': 'kms a\n', 'data/blob.bin': blob });
  });
  afterAll(async () => {
    await s3?.stop();
    t?.remove();
  });

  it('SSE-C: pushes packs, blobs, a multipart file and a rename (copied through the agent: RGW 16 cannot copy encrypted objects)', async () => {
    const first = await t.agent(['push', 'secret', '--json'], env({ S3_SSE_C_KEY_FILE: sseC.file }), 'c');
    expect(first.code, first.stderr).toBe(0);
    renameSync(path.join(t.root, 'secret/assets/blob.bin'), path.join(t.root, 'secret/assets/renamed.bin'));
    const second = await t.agent(['push', 'secret', '--json'], env({ S3_SSE_C_KEY_FILE: sseC.file }), 'c');
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).totals).toMatchObject({ copied: 1, deleted: 1 });

    const withKey = storeWith({ type: 'SSE-C', key: sseC.key });
    for (const [key, bytes] of [['secret/assets/renamed.bin', blob], ['secret/assets/big.bin', big]] as const) {
      const got = await withKey.get(key);
      expect(got.notModified ? undefined : sha(got.body), key).toBe(sha(bytes));
      await expect(storeWith().get(key), key).rejects.toMatchObject({ code: 'ENCRYPTION_KEY', message: expect.stringMatching(/encrypted with a customer key \(SSE-C\), and none was given/) });
    }
    const other = storeWith({ type: 'SSE-C', key: randomBytes(32).toString('base64') });
    await expect(other.get('.sync/.heads/secret')).rejects.toMatchObject({ code: 'ENCRYPTION_KEY', message: expect.stringMatching(/another key than the one in --sse-c-key-file/) });
    // A range of an encrypted pack, as the mount and restore read them.
    const range = await withKey.get('secret/src/s7.ts', { range: { start: 13, end: 14 } });
    expect(range.notModified ? undefined : range.body.toString()).toBe('s7');
  });

  it('SSE-C: restore reads packs by range with the key; without it, or with another, it stops with a clear error', async () => {
    const to = path.join(t.base, 'restored');
    const r = await t.agent(['restore', 'secret', '--to', to], env({ S3_SSE_C_KEY_FILE: sseC.file }), 'c');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(to, 'src/s39.ts'), 'utf8')).toBe('export const s39 = 39;\n');
    expect(sha(readFileSync(path.join(to, 'assets/big.bin')))).toBe(sha(big));
    // Fresh state: with the old one a no-op push is one conditional GET, which RGW answers 304 without the key.
    const without = await t.agent(['push', 'secret'], env(), 'c-without');
    expect(without.code).toBe(3);
    expect(errorLines(without)).toMatch(/^error: GET s3:\/\/[^ ]+\/\.sync\/\.heads\/secret: the object is encrypted with a customer key/);
    const wrong = await t.agent(['push', 'secret', '--sse-c-key-file', keyFile(t.base, 'wrong.key').file], env(), 'c-wrong');
    expect(wrong.code).toBe(3);
    expect(errorLines(wrong)).toMatch(/another key than the one in --sse-c-key-file/);
  });

  it('SSE-C: the mount serves every file with the key (pinned reads, ranges of packs and blobs)', async () => {
    const mount = await startMountCli(t.base, env({ S3_SSE_C_KEY_FILE: sseC.file }));
    try {
      expect(await readFile(path.join(mount.mnt, 'secret/src/s0.ts'), 'utf8')).toBe('export const s0 = 0;\n');
      expect(await readFile(path.join(mount.mnt, 'secret/src/s25.ts'), 'utf8')).toBe('export const s25 = 25;\n');
      expect(sha(await readFile(path.join(mount.mnt, 'secret/assets/renamed.bin')))).toBe(sha(blob));
      expect(sha(await readFile(path.join(mount.mnt, 'secret/assets/big.bin')))).toBe(sha(big));
    } finally {
      await mount.stop();
    }
  });

  it('SSE-C: a mount without the key serves no content (EIO), never the ciphertext', async () => {
    const mount = await startMountCli(t.base, env());
    try {
      await expect(readFile(path.join(mount.mnt, 'secret/src/s0.ts'))).rejects.toMatchObject({ code: 'EIO' });
      await expect(readFile(path.join(mount.mnt, 'secret/assets/big.bin'))).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      await mount.stop();
    }
  });

  it('SSE-KMS: pushes with the server\'s key, readable without any key; an unknown key is refused clearly', async () => {
    const r = await t.agent(['push', 'kms', '--json'], env({ S3_SSE_KMS_KEY_ID: 'testkey-1' }), 'k');
    expect(r.code, r.stderr).toBe(0);
    const got = await storeWith().get('kms/data/blob.bin');
    expect(got.notModified ? undefined : sha(got.body)).toBe(sha(blob));
    t.write('kms', { 'b.txt': 'more\n' });
    const unknown = await t.agent(['push', 'kms'], env({ S3_SSE_KMS_KEY_ID: 'no-such-key' }), 'k');
    expect(unknown.code).toBe(3);
    expect(errorLines(unknown)).toMatch(/^error: the KMS key could not be used for PUT s3:\/\/\S+: Failed to retrieve the actual key, kms-keyid: no-such-key/);
  });

  it('SSE-S3: refused, since RGW 16 accepts the header and stores the object unencrypted', async () => {
    t.write('kms', { 'c.txt': 'and more\n' });
    const r = await t.agent(['push', 'kms'], env({ S3_SSE: 'AES256' }), 'k');
    expect(r.code).toBe(3);
    expect(errorLines(r)).toMatch(/did not apply SSE-S3 \(AES256\) to PUT .*the server does not support it/);
  });
});
