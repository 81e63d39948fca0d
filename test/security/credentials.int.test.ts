/**
 * Credentials the usual ways, through the CLIs' own client construction: a named profile in a shared
 * credentials file (as a Kubernetes Secret mounted as a file provides it) and web identity (IRSA:
 * a token file and a role, exchanged at STS for temporary credentials). The direct PUT path must
 * sign with the same resolved credentials, session token included.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingProxy, startTestS3, type CountingProxy, type EmbeddedS3 } from '@workspace-sync/testkit';
import { BACKEND, errorLines, scratch, type Scratch } from './helpers.js';

let s3: EmbeddedS3;
let t: Scratch;
/** Everything but the keys: the credential chain must find them elsewhere. */
let base: Record<string, string>;

beforeAll(async () => {
  s3 = await startTestS3();
  t = scratch('credentials');
  const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...rest } = s3.env;
  // Tests talk to loopback only: the chain's last resort, the EC2 instance metadata endpoint, stays off.
  base = {
    ...rest, AWS_CONFIG_FILE: path.join(t.base, 'no-config'), AWS_SHARED_CREDENTIALS_FILE: path.join(t.base, 'no-credentials'), AWS_EC2_METADATA_DISABLED: 'true',
  };
  const files: Record<string, string> = {};
  for (let i = 0; i < 30; i++) files[`f${i}.txt`] = `${i}\n`;
  t.write('app', files);
});

afterAll(async () => {
  await s3?.stop();
  t?.remove();
});

describe('credentials', () => {
  it('reads a named profile from a shared credentials file (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE)', async () => {
    const file = path.join(t.base, 'credentials');
    writeFileSync(file, [
      '[default]', 'aws_access_key_id = not-these', 'aws_secret_access_key = not-these-either', '',
      '[workspace-sync]', `aws_access_key_id = ${s3.env.AWS_ACCESS_KEY_ID}`, `aws_secret_access_key = ${s3.env.AWS_SECRET_ACCESS_KEY}`, '',
    ].join('\n'));
    const r = await t.agent(['push', 'app', '--json'], { ...base, AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: 'workspace-sync' }, 'profile');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).totals.uploaded).toBeGreaterThan(0);
    const missing = await t.agent(['push', 'app'], { ...base, AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: 'no-such-profile' }, 'profile');
    expect(missing.code).toBe(3);
    expect(errorLines(missing)).toMatch(/^error: no S3 credentials found for http:\/\/127\.0\.0\.1:\d+\n {2}hint: .*AWS_PROFILE/);
  });

  it('says so when no credentials are found at all, without a stack trace', async () => {
    const r = await t.agent(['push', 'app'], base, 'none');
    expect(r.code).toBe(3);
    expect(errorLines(r)).toMatch(/^error: no S3 credentials found/);
  });

  // Ceph RGW would check the session token against its own STS; only a server that ignores it can
  // stand behind the stand-in STS below.
  it.skipIf(BACKEND !== 'embedded')('uses web identity (IRSA): token file and role exchanged at STS, session token on every request', async () => {
    const tokenFile = path.join(t.base, 'token');
    writeFileSync(tokenFile, 'eyJhbGciOiJSUzI1NiJ9.service-account.signature');
    const calls: string[] = [];
    const sts: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        calls.push(decodeURIComponent(body));
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>${s3.env.AWS_ACCESS_KEY_ID}</AccessKeyId><SecretAccessKey>${s3.env.AWS_SECRET_ACCESS_KEY}</SecretAccessKey>
<SessionToken>session-token-from-sts</SessionToken><Expiration>${new Date(Date.now() + 3_600_000).toISOString()}</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/workspace-sync/agent</Arn><AssumedRoleId>AROA:agent</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`);
      });
    });
    await new Promise<void>((resolve) => sts.listen(0, '127.0.0.1', () => resolve()));
    const proxy: CountingProxy = await startCountingProxy(s3.endpoint);
    try {
      t.write('app', { 'new-file.txt': 'via web identity\n' });
      const r = await t.agent(['push', 'app', '--json'], {
        ...base, S3_ENDPOINT: proxy.endpoint,
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/workspace-sync',
        AWS_ENDPOINT_URL_STS: `http://127.0.0.1:${(sts.address() as AddressInfo).port}`,
      }, 'web-identity');
      expect(r.code, r.stderr).toBe(0);
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatch(/Action=AssumeRoleWithWebIdentity/);
      expect(calls[0]).toMatch(/RoleArn=arn:aws:iam::123456789012:role\/workspace-sync/);
      expect(calls[0]).toMatch(/WebIdentityToken=eyJhbGciOiJSUzI1NiJ9\.service-account\.signature/);
      // Small files go by the direct PUT, the head by the SDK: both sign with the session token.
      expect(proxy.count('PUT')).toBeGreaterThan(2);
      expect(proxy.requests.filter((q) => q.headers['x-amz-security-token'] !== 'session-token-from-sts')).toEqual([]);
    } finally {
      await proxy.close();
      await new Promise<void>((resolve) => sts.close(() => resolve()));
    }
  });
});
