/**
 * The S3 settings both CLIs derive from their configuration. The files the configuration names (a
 * CA bundle, an SSE-C key) are read and checked here, once, so a bad one stops the start with one
 * line naming it; and the insecure TLS opt-out is logged here, where both processes pass.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CommonConfig } from './config.js';
import { SyncError } from './errors.js';
import type { Logger } from './log.js';
import type { Encryption, S3Settings } from './s3.js';

/** What the agent adds to the common options (the mount never writes, so it never asks for encryption). */
export interface EncryptionConfig {
  sse?: 'AES256' | 'aws:kms' | undefined;
  sseKmsKeyId?: string | undefined;
}

export function s3SettingsFor(config: Readonly<CommonConfig & EncryptionConfig>, log?: Logger): S3Settings {
  const settings: S3Settings = {
    endpoint: config.endpoint, region: config.region, bucket: config.bucket, forcePathStyle: config.forcePathStyle, prefix: config.prefix,
  };
  // AWS itself (no endpoint) is https too.
  const tls = config.endpoint === undefined || config.endpoint.startsWith('https:');
  if (tls && config.insecureSkipTlsVerify) {
    settings.insecureTls = true;
    log?.warn({ endpoint: config.endpoint ?? 'AWS S3' },
      'TLS certificate verification is OFF (--insecure-skip-tls-verify): anyone on the network path can read and change what is synced. Development only');
  } else if (tls && config.caBundle !== undefined) {
    settings.ca = readCaBundle(config.caBundle);
  }
  const encryption = encryptionFor(config);
  if (encryption) settings.encryption = encryption;
  return settings;
}

function encryptionFor(config: Readonly<CommonConfig & EncryptionConfig>): Encryption | undefined {
  if (config.sseCKeyFile !== undefined) return { type: 'SSE-C', key: readCustomerKey(config.sseCKeyFile) };
  if (config.sse === 'AES256') return { type: 'AES256' };
  if (config.sse === 'aws:kms') return { type: 'aws:kms', kmsKeyId: config.sseKmsKeyId };
  return undefined;
}

/** A PEM file of one or more CA certificates, as --ca-bundle, AWS_CA_BUNDLE and curl's --cacert take. */
export function readCaBundle(file: string): string {
  const pem = readSetting(file, 'CA bundle').toString('utf8');
  const invalid = (why: string, cause?: unknown) => new SyncError('CONFIG_INVALID', `the CA bundle ${file} ${why}`, {
    hint: 'give a PEM file of the CA certificates that sign the endpoint\'s certificate (--ca-bundle, S3_CA_BUNDLE or AWS_CA_BUNDLE)', cause,
  });
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw invalid('holds no PEM certificate');
  for (const [i, cert] of certs.entries()) {
    try {
      new X509Certificate(cert);
    } catch (cause) {
      throw invalid(`holds a certificate that does not parse (number ${i + 1}: ${(cause as Error).message})`, cause);
    }
  }
  return pem;
}

/** A 256-bit SSE-C key: 32 raw bytes, or their base64 (a trailing newline allowed). Returned as base64. */
export function readCustomerKey(file: string): string {
  const raw = readSetting(file, 'SSE-C key file');
  if (raw.length === 32) return raw.toString('base64');
  const text = raw.toString('latin1').trim();
  const decoded = Buffer.from(text, 'base64');
  if (decoded.length === 32 && decoded.toString('base64') === text) return text;
  throw new SyncError('CONFIG_INVALID', `the SSE-C key file ${file} does not hold a 256-bit key (${raw.length} bytes)`, {
    hint: 'it must hold 32 random bytes, raw or base64; make one with: openssl rand 32 > key && chmod 600 key',
  });
}

function readSetting(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new SyncError('CONFIG_INVALID', `cannot read the ${what} ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'check the path and that this user may read it', cause,
    });
  }
}
