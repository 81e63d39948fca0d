import { describe, expect, it } from 'vitest';
import { formatBytes, parseDuration, parseSize } from '../src/units.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('parseSize', () => {
  it.each([
    ['123', 123],
    ['0', 0],
    ['10b', 10],
    ['64K', 64 * KiB],
    ['64k', 64 * KiB],
    ['64KB', 64 * KiB],
    ['512MiB', 512 * MiB],
    ['1G', GiB],
    ['1.5GiB', 1.5 * GiB],
    ['1T', 1024 ** 4],
    [' 2 m ', 2 * MiB],
    ['0.5k', 512],
  ])('%j is %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it('takes numbers as bytes, rounded', () => {
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize(1.6)).toBe(2);
  });

  it.each(['', ' ', 'abc', '-1', '1X', '1e3', '.5', '1.', 'G', '1 G B'])('refuses %j with a RangeError naming it', (input) => {
    expect(() => parseSize(input)).toThrow(RangeError);
    expect(() => parseSize(input)).toThrow(input.trim() === '' ? /size/ : input);
  });

  it('refuses a size too large to be a number', () => {
    expect(() => parseSize('9'.repeat(400))).toThrow(RangeError);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses the number %d', (input) => {
    expect(() => parseSize(input)).toThrow(RangeError);
  });
});

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1m30s500ms', 90_500],
    ['90', 90_000],
    [' 0 ', 0],
  ])('%j is %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it('takes numbers as seconds, rounded to milliseconds', () => {
    expect(parseDuration(2)).toBe(2000);
    expect(parseDuration(0.0015)).toBe(2);
  });

  it.each(['', ' ', '5x', '-1s', 'ms', 's', '1 h', '1h30', '30 s', '1e3s'])('refuses %j with a RangeError', (input) => {
    expect(() => parseDuration(input)).toThrow(RangeError);
  });

  it('refuses a duration too large to be a number', () => {
    expect(() => parseDuration(`${'9'.repeat(400)}h`)).toThrow(RangeError);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses the number %d', (input) => {
    expect(() => parseDuration(input)).toThrow(RangeError);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1.5 * MiB, '1.5 MiB'],
    [3 * GiB, '3.0 GiB'],
    [2 * 1024 ** 5, '2048.0 TiB'],
  ])('%d is %j', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});
