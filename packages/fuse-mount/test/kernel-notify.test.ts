import { describe, expect, it } from 'vitest';
import { expireEntry, invalidateAttributes, supportsExpireOnly } from '../src/kernel-notify.js';

describe('kernel notifications', () => {
  it('encode FUSE_NOTIFY_INVAL_ENTRY with FUSE_EXPIRE_ONLY as the kernel reads it', () => {
    const msg = expireEntry(1n, 'wörk');
    const name = Buffer.from('wörk');
    // fuse_out_header: len, error = notify code, unique 0; then parent, namelen, flags, name, NUL.
    expect(msg.length).toBe(16 + 16 + name.length + 1);
    expect(msg.readUInt32LE(0)).toBe(msg.length);
    expect(msg.readInt32LE(4)).toBe(3);
    expect(msg.readBigUInt64LE(8)).toBe(0n);
    expect(msg.readBigUInt64LE(16)).toBe(1n);
    expect(msg.readUInt32LE(24)).toBe(name.length);
    expect(msg.readUInt32LE(28)).toBe(1);
    expect(msg.subarray(32, 32 + name.length).equals(name)).toBe(true);
    expect(msg[msg.length - 1]).toBe(0);
  });

  it('encode FUSE_NOTIFY_INVAL_INODE for attributes only (offset -1)', () => {
    const msg = invalidateAttributes(1n);
    expect(msg.length).toBe(40);
    expect(msg.readInt32LE(4)).toBe(2);
    expect(msg.readBigUInt64LE(16)).toBe(1n);
    expect(msg.readBigInt64LE(24)).toBe(-1n);
    expect(msg.readBigInt64LE(32)).toBe(0n);
  });

  it('are sent only where the kernel knows FUSE_EXPIRE_ONLY (6.2 and later): older ones would unhash the entry', () => {
    expect(supportsExpireOnly('6.2.0')).toBe(true);
    expect(supportsExpireOnly('6.18.44-fc-v669')).toBe(true);
    expect(supportsExpireOnly('7.0.1')).toBe(true);
    expect(supportsExpireOnly('6.1.0-18-amd64')).toBe(false);
    expect(supportsExpireOnly('5.15.0-91-generic')).toBe(false);
    expect(supportsExpireOnly('')).toBe(false);
  });
});
