import { describe, expect, it } from 'vitest';
import {
  type ErrorCode, ERROR_PROPERTIES, ErrorCodes, ExitCodes, SyncError, errorProperties, exitCodeFor, formatError, isOutage, isOutageCode, isSyncError, redact,
} from '../src/errors.js';

describe('exitCodeFor', () => {
  const expected: Record<ErrorCode, number> = {
    CONFIG_INVALID: ExitCodes.USAGE,
    USAGE: ExitCodes.USAGE,
    WORKSPACE_UNKNOWN: ExitCodes.USAGE,
    ENDPOINT_UNREACHABLE: ExitCodes.REMOTE,
    BAD_CREDENTIALS: ExitCodes.REMOTE,
    ACCESS_DENIED: ExitCodes.REMOTE,
    BUCKET_NOT_FOUND: ExitCodes.REMOTE,
    OBJECT_NOT_FOUND: ExitCodes.REMOTE,
    PRECONDITION_FAILED: ExitCodes.REMOTE,
    S3_ERROR: ExitCodes.REMOTE,
    MANIFEST_INVALID: ExitCodes.REMOTE,
    MANIFEST_TOO_NEW: ExitCodes.REMOTE,
    MOUNT_FAILED: ExitCodes.REMOTE,
    WORKSPACE_MISSING: ExitCodes.REFUSED,
    WORKSPACE_UNREADABLE: ExitCodes.REFUSED,
    WORKSPACE_EMPTY: ExitCodes.REFUSED,
    DELETE_LIMIT: ExitCodes.REFUSED,
    FILE_UNSTABLE: ExitCodes.PARTIAL,
    PARTIAL: ExitCodes.PARTIAL,
    INTERRUPTED: ExitCodes.INTERRUPTED,
    STATE_UNWRITABLE: ExitCodes.REFUSED,
    CONFLICT: ExitCodes.REMOTE,
    TARGET_NOT_EMPTY: ExitCodes.REFUSED,
    GENERATION_NOT_FOUND: ExitCodes.USAGE,
    VIEW_UNAVAILABLE: ExitCodes.REMOTE,
    TLS_UNTRUSTED: ExitCodes.REMOTE,
    ENCRYPTION_UNSUPPORTED: ExitCodes.REMOTE,
    ENCRYPTION_KEY: ExitCodes.REMOTE,
  };

  it('maps every code (and the table covers every code)', () => {
    expect(Object.keys(expected).sort()).toEqual(Object.keys(ErrorCodes).sort());
    for (const [code, exit] of Object.entries(expected)) {
      expect(exitCodeFor(new SyncError(code as ErrorCode, 'x')), code).toBe(exit);
    }
  });

  it('derives what the CLIs, watch and the mount decide from one table', () => {
    expect(isOutage(new SyncError('ENDPOINT_UNREACHABLE', 'x'))).toBe(true);
    expect(isOutage(new SyncError('S3_ERROR', 'x'))).toBe(true);
    expect(isOutage(new SyncError('ACCESS_DENIED', 'x'))).toBe(false);
    expect(isOutage(new Error('bug'))).toBe(false);
    expect(isOutageCode('ENDPOINT_UNREACHABLE')).toBe(true);
    expect(isOutageCode('NOT_A_CODE')).toBe(false);
    const held = Object.entries(ERROR_PROPERTIES).filter(([, p]) => 'held' in p && p.held).map(([c]) => c).sort();
    expect(held).toEqual(['DELETE_LIMIT', 'WORKSPACE_EMPTY', 'WORKSPACE_UNREADABLE']);
    const perWorkspace = Object.entries(ERROR_PROPERTIES).filter(([, p]) => p.scope === 'workspace').map(([c]) => c).sort();
    // A per-workspace policy denies one workspace and allows the others.
    expect(perWorkspace).toEqual(['ACCESS_DENIED', 'CONFLICT', 'DELETE_LIMIT', 'WORKSPACE_EMPTY', 'WORKSPACE_MISSING', 'WORKSPACE_UNKNOWN', 'WORKSPACE_UNREADABLE']);
    expect(errorProperties(new SyncError('PRECONDITION_FAILED', 'x'))?.errno).toBe('ESTALE');
    expect(errorProperties(new Error('bug'))).toBeUndefined();
  });

  it('treats anything but a SyncError as an internal error', () => {
    expect(exitCodeFor(new Error('bug'))).toBe(ExitCodes.INTERNAL);
    expect(exitCodeFor('string')).toBe(70);
    expect(exitCodeFor(undefined)).toBe(70);
  });
});

describe('SyncError', () => {
  it('carries code, hint and cause', () => {
    const cause = new Error('low level');
    const e = new SyncError('S3_ERROR', 'put failed on a/b', { hint: 'retry', cause });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('SyncError');
    expect(e.code).toBe('S3_ERROR');
    expect(e.hint).toBe('retry');
    expect(e.cause).toBe(cause);
    expect(isSyncError(e)).toBe(true);
    expect(isSyncError(e, 'S3_ERROR')).toBe(true);
    expect(isSyncError(e, 'USAGE')).toBe(false);
    expect(isSyncError(new Error('x'))).toBe(false);
  });

  it('redacts its message and hint', () => {
    const e = new SyncError('S3_ERROR', 'GET http://k:hunter2@h/x failed', { hint: 'check secretAccessKey=hunter2' });
    expect(e.message).not.toContain('hunter2');
    expect(e.hint).not.toContain('hunter2');
  });
});

describe('formatError', () => {
  it('prints message and hint for a SyncError', () => {
    expect(formatError(new SyncError('USAGE', 'no workspace given', { hint: 'pass one' }))).toBe('error: no workspace given\n  hint: pass one');
    expect(formatError(new SyncError('USAGE', 'no workspace given'))).toBe('error: no workspace given');
  });

  it('prints a bug as an internal error, redacted', () => {
    const out = formatError(new Error('boom aws_secret_access_key=hunter2'));
    expect(out).toMatch(/^internal error: Error: boom/);
    expect(out).toContain('this is a bug');
    expect(out).not.toContain('hunter2');
    expect(formatError('plain')).toContain('plain');
  });
});

describe('redact', () => {
  it.each([
    ['env style', 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG'],
    ['config style', 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG'],
    ['JSON', '{"secretAccessKey":"wJalrXUtnFEMI/K7MDENG","region":"x"}'],
    ['object dump', "{ secretAccessKey: 'wJalrXUtnFEMI/K7MDENG' }"],
    ['session token', 'aws_session_token=wJalrXUtnFEMI/K7MDENG'],
    ['presigned URL', 'https://h/b/k?X-Amz-Credential=wJalrXUtnFEMI%2F20240101&X-Amz-Signature=wJalrXUtnFEMI/K7MDENG'],
    ['presigned session token', 'https://h/b/k?X-Amz-Security-Token=wJalrXUtnFEMI/K7MDENG&x=1'],
    ['authorization header', 'Authorization: AWS4-HMAC-SHA256 Credential=wJalrXUtnFEMI/K7MDENG, Signature=wJalrXUtnFEMI/K7MDENG'],
    ['URL credentials', 'http://user:wJalrXUtnFEMIK7MDENG@minio:9000/'],
    ['SSE-C key header', 'x-amz-server-side-encryption-customer-key: wJalrXUtnFEMI/K7MDENG+aGVsbG8gd29ybGQgaGVsbG8='],
    ['SSE-C copy-source key header', '"x-amz-copy-source-server-side-encryption-customer-key":"wJalrXUtnFEMI/K7MDENG"'],
    ['SDK input', "{ SSECustomerAlgorithm: 'AES256', SSECustomerKey: 'wJalrXUtnFEMI/K7MDENG' }"],
  ])('removes the secret from %s', (_, text) => {
    const out = redact(text);
    expect(out).not.toContain('wJalrXUtnFEMI');
    expect(out).toContain('[redacted]');
  });

  it('leaves the MD5 of an SSE-C key alone (it is sent to prove the key, not to be one)', () => {
    const text = 'x-amz-server-side-encryption-customer-key-md5: aIs6k94H2n4YaTEl1av+zw==';
    expect(redact(text)).toBe(text);
  });

  it('leaves ordinary text alone', () => {
    const text = 'upload of src/index.ts to s3://bucket/ws/src/index.ts failed: SlowDown (503)';
    expect(redact(text)).toBe(text);
  });

  it('leaves a mention of a variable name alone (the credentials hint)', () => {
    const hint = 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE';
    expect(redact(hint)).toBe(hint);
    expect(new SyncError('BAD_CREDENTIALS', 'no credentials', { hint }).hint).toBe(hint);
  });
});
