/** The security settings in-process: options, key and CA files, error wording, policies, health outlines. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig, type ResolveInput } from '../src/config.js';
import { exitCodeFor, ExitCodes, SyncError } from '../src/errors.js';
import { outlineKeys } from '../src/health.js';
import { keyOutline, workspaceOfKey } from '../src/paths.js';
import { agentPolicy, mountPolicy } from '../src/policy.js';
import { translateS3Error } from '../src/s3.js';
import { readCaBundle, readCustomerKey, s3SettingsFor } from '../src/s3-settings.js';
import { tempDir } from './filter/walk-helper.js';

const scratch = tempDir('security');
afterAll(() => scratch.remove());
const file = (name: string, content: string | Buffer) => {
  const p = path.join(scratch.dir, name);
  writeFileSync(p, content);
  return p;
};

function configError(scope: 'agent' | 'mount', input: ResolveInput): SyncError {
  try {
    resolveConfig(scope as 'agent', { cwd: scratch.dir, ...input });
  } catch (e) {
    expect(e).toBeInstanceOf(SyncError);
    return e as SyncError;
  }
  throw new Error('resolveConfig did not throw');
}

describe('security options', () => {
  it('health listens on loopback unless told otherwise', () => {
    expect(resolveConfig('agent', { cwd: scratch.dir, env: {} }).healthAddress).toBe('127.0.0.1');
    expect(resolveConfig('mount', { cwd: scratch.dir, env: { HEALTH_ADDRESS: '0.0.0.0' } }).healthAddress).toBe('0.0.0.0');
    expect(configError('mount', { env: { HEALTH_ADDRESS: 'a b' } }).message).toMatch(/healthAddress \(from env HEALTH_ADDRESS\)/);
  });

  it('takes the CA bundle from --ca-bundle, S3_CA_BUNDLE or AWS_CA_BUNDLE, in that order', () => {
    const c = (input: ResolveInput) => resolveConfig('agent', { cwd: scratch.dir, ...input }).caBundle;
    expect(c({ env: {} })).toBeUndefined();
    expect(c({ env: { AWS_CA_BUNDLE: '/etc/aws.pem' } })).toBe('/etc/aws.pem');
    expect(c({ env: { AWS_CA_BUNDLE: '/etc/aws.pem', S3_CA_BUNDLE: 'ours.pem' } })).toBe(path.join(scratch.dir, 'ours.pem'));
    expect(c({ env: { AWS_CA_BUNDLE: '/etc/aws.pem' }, flags: { caBundle: '/flag.pem' } })).toBe('/flag.pem');
  });

  it('implies SSE-KMS from a KMS key id and refuses combinations that cannot be meant', () => {
    expect(resolveConfig('agent', { cwd: scratch.dir, env: { S3_SSE_KMS_KEY_ID: 'alias/ws' } })).toMatchObject({ sse: 'aws:kms', sseKmsKeyId: 'alias/ws' });
    expect(configError('agent', { env: { S3_SSE: 'AES256', S3_SSE_KMS_KEY_ID: 'k' } }).message).toMatch(/needs --sse aws:kms/);
    expect(configError('agent', { env: { S3_SSE: 'aes256' } }).message).toMatch(/expected AES256 or aws:kms/);
    const both = configError('agent', { env: { S3_SSE: 'AES256', S3_SSE_C_KEY_FILE: '/k' } });
    expect(both.message).toMatch(/cannot be combined/);
    expect(exitCodeFor(both)).toBe(ExitCodes.USAGE);
  });

  it('refuses SSE-C over plain http: the key travels with every request', () => {
    const e = configError('mount', { env: { S3_ENDPOINT: 'http://127.0.0.1:9000', S3_SSE_C_KEY_FILE: '/k' } });
    expect(e.message).toMatch(/needs an https:\/\/ endpoint, not http:\/\/127\.0\.0\.1:9000/);
    expect(resolveConfig('mount', { cwd: scratch.dir, env: { S3_ENDPOINT: 'https://s3.internal', S3_SSE_C_KEY_FILE: '/k' } }).sseCKeyFile).toBe('/k');
    // AWS itself (no endpoint) is https.
    expect(resolveConfig('agent', { cwd: scratch.dir, env: { S3_SSE_C_KEY_FILE: '/k' } }).sseCKeyFile).toBe('/k');
  });

  it('has --default-permissions for the mount only', () => {
    expect(resolveConfig('mount', { cwd: scratch.dir, env: { DEFAULT_PERMISSIONS: 'true' } }).defaultPermissions).toBe(true);
    expect('defaultPermissions' in resolveConfig('agent', { cwd: scratch.dir, env: {} })).toBe(false);
    expect('sse' in resolveConfig('mount', { cwd: scratch.dir, env: {} })).toBe(false);
  });
});

describe('SSE-C key files', () => {
  const key = randomBytes(32);

  it('reads 32 raw bytes or their base64, with or without a trailing newline', () => {
    expect(readCustomerKey(file('raw.key', key))).toBe(key.toString('base64'));
    expect(readCustomerKey(file('b64.key', `${key.toString('base64')}\n`))).toBe(key.toString('base64'));
  });

  it.each([
    ['too short', randomBytes(16)],
    ['base64 of 16 bytes', randomBytes(16).toString('base64')],
    ['hex of 32 bytes', randomBytes(32).toString('hex')],
    ['empty', ''],
  ])('refuses a key file that is %s, naming the file', (name, content) => {
    const p = file(`bad-${name.replace(/\W/g, '')}.key`, content);
    expect(() => readCustomerKey(p)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining(p) }));
  });

  it('names a key file it cannot read, and never prints the key', () => {
    expect(() => readCustomerKey('/no/such/key')).toThrow(/cannot read the SSE-C key file \/no\/such\/key \(ENOENT\)/);
    const p = file('secret.key', key.toString('base64'));
    const settings = s3SettingsFor({ ...baseConfig, endpoint: 'https://s3.internal', sseCKeyFile: p });
    expect(settings.encryption).toEqual({ type: 'SSE-C', key: key.toString('base64') });
  });
});

describe('CA bundles', () => {
  it('reads a PEM CA certificate and refuses files that hold none or a broken one', () => {
    const dir = scratch.dir;
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'ca.key'), '-out', path.join(dir, 'ca.pem'),
      '-days', '1', '-subj', '/CN=unit test CA'], { stdio: 'ignore' });
    expect(readCaBundle(path.join(dir, 'ca.pem'))).toContain('BEGIN CERTIFICATE');
    expect(() => readCaBundle(file('empty.pem', 'nothing here'))).toThrow(/holds no PEM certificate/);
    expect(() => readCaBundle(file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'))).toThrow(/certificate that does not parse \(number 1/);
    expect(() => readCaBundle(path.join(dir, 'missing.pem'))).toThrow(/cannot read the CA bundle .*missing\.pem \(ENOENT\)/);
  });

  it('applies to https only: a plain-http endpoint never reads it (AWS_CA_BUNDLE may point anywhere)', () => {
    expect(s3SettingsFor({ ...baseConfig, endpoint: 'http://127.0.0.1:9000', caBundle: '/no/such/bundle.pem' }).ca).toBeUndefined();
    expect(() => s3SettingsFor({ ...baseConfig, endpoint: 'https://s3.internal', caBundle: '/no/such/bundle.pem' })).toThrow(/cannot read the CA bundle/);
  });

  it('logs the insecure opt-out as a warning, every time', () => {
    const warnings: string[] = [];
    const log = { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never;
    const s = s3SettingsFor({ ...baseConfig, endpoint: 'https://s3.internal', insecureSkipTlsVerify: true, caBundle: '/ignored.pem' }, log);
    expect(s.insecureTls).toBe(true);
    expect(warnings).toEqual([expect.stringMatching(/TLS certificate verification is OFF .*Development only/)]);
  });
});

const baseConfig = {
  endpoint: undefined, region: 'us-east-1', bucket: 'b', prefix: 'team/', forcePathStyle: true, logLevel: 'info', healthPort: undefined,
  healthAddress: '127.0.0.1', caBundle: undefined, insecureSkipTlsVerify: false, sseCKeyFile: undefined,
} as const;

describe('workspaceOfKey and keyOutline', () => {
  it.each([
    ['team/www/src/a.ts', 'www', 'team/www/…'],
    ['team/www/', 'www', 'team/www/…'],
    ['team/.sync/www/packs/0123.pack', 'www', 'team/.sync/www/…'],
    ['team/.sync/www/', 'www', 'team/.sync/www/…'],
    ['team/.sync/.heads/www', 'www', 'team/.sync/.heads/www'],
    ['team/', undefined, 'team/'],
    ['team/.sync/', undefined, 'team/.sync/'],
    ['team/.sync/.heads/', undefined, 'team/.sync/.heads/'],
    ['team/README.md', undefined, 'team/…'],
    ['team/.hidden/x', undefined, 'team/…'],
    ['other/www/a', undefined, 'team/…'],
  ])('%s belongs to %s and is shown as %s', (key, ws, outline) => {
    expect(workspaceOfKey('team/', key)).toBe(ws);
    expect(keyOutline('team/', key)).toBe(outline);
  });

  it('cuts every s3:// URL in a health answer down to its workspace', () => {
    const health = {
      status: 'degraded',
      reasons: ['workspace www: access denied to workspace www: PUT s3://bkt/team/www/src/secret plan.ts', 'inotify limit'],
      workspaces: [
        { workspace: 'www', reason: 'GET s3://bkt/team/.sync/www/packs/0123.pack failed: SlowDown (503)', n: 3 },
        { workspace: 'www', reason: 'object changed underneath: PUT s3://bkt/team/.sync/.heads/www' },
      ],
    };
    expect(outlineKeys(health, 'team/')).toEqual({
      status: 'degraded',
      reasons: ['workspace www: access denied to workspace www: PUT s3://bkt/team/www/…', 'inotify limit'],
      // What followed the key is cut with it: a key may hold spaces, so its end cannot be told.
      workspaces: [
        { workspace: 'www', reason: 'GET s3://bkt/team/.sync/www/…', n: 3 },
        { workspace: 'www', reason: 'object changed underneath: PUT s3://bkt/team/.sync/.heads/www' },
      ],
    });
  });
});

describe('translateS3Error', () => {
  const ctx = { bucket: 'bkt', endpoint: 'https://s3.internal', prefix: 'team/' };
  const s3err = (name: string, status: number, message = name) => Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

  it('names the workspace of a denied key, and says whether reading or writing was refused', () => {
    const put = translateS3Error(s3err('AccessDenied', 403), { ...ctx, op: 'PUT', key: 'team/b/src/x.ts' });
    expect(put).toMatchObject({ code: 'ACCESS_DENIED', message: 'access denied to workspace b: PUT s3://bkt/team/b/src/x.ts' });
    expect(put.hint).toMatch(/may not write workspace b.*docs\/security\.md/);
    expect(exitCodeFor(put)).toBe(3);
    const head = translateS3Error(s3err('AccessDenied', 403), { ...ctx, op: 'GET', key: 'team/.sync/.heads/b' });
    expect(head.message).toBe('access denied to workspace b: GET s3://bkt/team/.sync/.heads/b');
    expect(head.hint).toMatch(/may not read workspace b/);
    expect(translateS3Error(s3err('AccessDenied', 403), { ...ctx, op: 'LIST', key: 'team/' }).message).toBe('access denied: LIST s3://bkt/team/');
  });

  it('tells a certificate that does not verify from an unreachable endpoint, through causes', () => {
    const tls = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
    const e = translateS3Error(Object.assign(new Error('wrapped'), { cause: tls }), { ...ctx, op: 'GET', key: 'team/a/x' });
    expect(e.code).toBe('TLS_UNTRUSTED');
    expect(e.message).toMatch(/TLS certificate of https:\/\/s3\.internal does not verify \(SELF_SIGNED_CERT_IN_CHAIN/);
    expect(e.hint).toMatch(/--ca-bundle/);
    const host = translateS3Error(Object.assign(new Error("Hostname/IP does not match certificate's altnames"), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), { ...ctx, op: 'GET' });
    expect(host.code).toBe('TLS_UNTRUSTED');
    const proto = translateS3Error(Object.assign(new Error('wrong version number'), { code: 'EPROTO' }), { ...ctx, op: 'GET' });
    expect(proto).toMatchObject({ code: 'ENDPOINT_UNREACHABLE', message: expect.stringMatching(/does it serve https/) });
  });

  it('explains encryption failures as AWS and Ceph RGW word them', () => {
    const noKey = translateS3Error(s3err('InvalidArgument', 400, 'Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.'),
      { ...ctx, op: 'GET', key: 'team/a/x' });
    expect(noKey).toMatchObject({ code: 'ENCRYPTION_KEY', message: expect.stringMatching(/encrypted with a customer key \(SSE-C\), and none was given/) });
    const sseC = { type: 'SSE-C' as const, key: 'k' };
    const wrong = translateS3Error(s3err('InvalidArgument', 400, 'The calculated MD5 hash of the key did not match the hash that was provided.'),
      { ...ctx, op: 'GET', key: 'team/a/x', encryption: sseC });
    expect(wrong.message).toMatch(/another key than the one in --sse-c-key-file/);
    const kms = { type: 'aws:kms' as const, kmsKeyId: 'nokey' };
    const badKms = translateS3Error(s3err('InvalidAccessKeyId', 403, 'Failed to retrieve the actual key, kms-keyid: nokey'), { ...ctx, op: 'PUT', key: 'team/a/x', encryption: kms });
    expect(badKms).toMatchObject({ code: 'ENCRYPTION_KEY', message: expect.stringMatching(/KMS key could not be used/) });
    const refused = translateS3Error(s3err('InvalidRequest', 400, 'UnknownError'), { ...ctx, op: 'PUT', key: 'team/a/x', encryption: kms });
    expect(refused).toMatchObject({ code: 'ENCRYPTION_UNSUPPORTED', message: 'https://s3.internal refused SSE-KMS for PUT s3://bkt/team/a/x (InvalidRequest)' });
    // Without encryption asked for, the same answers are what they always were.
    expect(translateS3Error(s3err('InvalidAccessKeyId', 403), { ...ctx, op: 'PUT', key: 'team/a/x' }).code).toBe('BAD_CREDENTIALS');
  });
});

describe('policies', () => {
  const opts = { bucket: 'ws', prefix: 'team/', server: 'aws' as const };

  it('grants an agent its workspaces\' keys and listings, nothing bucket-wide but the upload listing', () => {
    const p = agentPolicy(['www', 'api'], opts);
    expect(p.Statement.map((s) => s.Sid)).toEqual(['WorkspaceSyncAgentObjects', 'WorkspaceSyncAgentListing', 'WorkspaceSyncAgentUploads']);
    const [objects, listing, uploads] = p.Statement;
    expect(objects!.Resource).toEqual([
      'arn:aws:s3:::ws/team/www/*', 'arn:aws:s3:::ws/team/.sync/www/*', 'arn:aws:s3:::ws/team/.sync/.heads/www',
      'arn:aws:s3:::ws/team/api/*', 'arn:aws:s3:::ws/team/.sync/api/*', 'arn:aws:s3:::ws/team/.sync/.heads/api',
    ]);
    expect(objects!.Action).not.toContain('s3:*');
    expect(listing!.Condition).toEqual({ StringLike: { 's3:prefix': ['team/www/*', 'team/.sync/www/*', 'team/.sync/.heads/www', 'team/api/*', 'team/.sync/api/*', 'team/.sync/.heads/api'] } });
    expect(uploads!.Action).toEqual(['s3:ListBucketMultipartUploads']);
    expect(p.Statement.every((s) => s.Principal === undefined)).toBe(true);
    expect(JSON.stringify(p)).not.toMatch(/CreateBucket|PutBucket|s3:\*/);
  });

  it('grants a mount reading only, under the prefix', () => {
    const p = mountPolicy(opts);
    expect(p.Statement.flatMap((s) => s.Action)).toEqual(['s3:GetObject', 's3:ListBucket']);
    expect(p.Statement[0]!.Resource).toEqual(['arn:aws:s3:::ws/team/*']);
    expect(p.Statement[1]!.Condition).toEqual({ StringLike: { 's3:prefix': ['team/*'] } });
    expect(mountPolicy({ ...opts, prefix: '' }).Statement[1]!.Condition).toBeUndefined();
  });

  it('names the principal in bucket policies; Ceph RGW also gets batch deletes on the bucket', () => {
    const p = agentPolicy(['www'], { ...opts, server: 'rgw', principal: 'arn:aws:iam:::user/alice' });
    expect(p.Statement.every((s) => s.Principal?.AWS[0] === 'arn:aws:iam:::user/alice')).toBe(true);
    expect(p.Statement.at(-1)).toMatchObject({ Action: ['s3:DeleteObject'], Resource: ['arn:aws:s3:::ws'] });
  });

  it.each([
    [['.sync'], /not a workspace name/],
    [['a/b'], /not a workspace name/],
    [['${aws:username}'], /not a workspace name/],
    [[], /at least one workspace/],
  ])('refuses workspaces %j', (ws, message) => {
    expect(() => agentPolicy(ws, opts)).toThrow(message);
  });

  it('refuses options that make no policy', () => {
    expect(() => agentPolicy(['www'], { ...opts, server: 'rgw' })).toThrow(/needs --principal/);
    expect(() => mountPolicy({ ...opts, server: 'minio', principal: 'arn:aws:iam:::user/m' })).toThrow(/takes no --principal/);
    expect(() => mountPolicy({ ...opts, principal: 'alice' })).toThrow(/not a user or role ARN/);
    expect(() => mountPolicy({ ...opts, server: 'gcs' as never })).toThrow(/unknown server/);
  });
});
