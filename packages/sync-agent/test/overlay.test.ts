import { describe, expect, it } from 'vitest';
import { Overlay } from '../src/overlay.js';

describe('Overlay', () => {
  it('behaves as a copy of its base under any mix of sets and deletes, and touches the base only on commit', () => {
    let seed = 7;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    for (let round = 0; round < 50; round++) {
      const base = new Map<string, number>();
      for (let i = 0; i < 40; i++) if (rand(2)) base.set(`k${i}`, i);
      const frozen = [...base];
      const copy = new Map(base);
      const o = new Overlay(base);
      for (let op = 0; op < 60; op++) {
        const k = `k${rand(50)}`;
        if (rand(3) === 0) expect(o.delete(k)).toBe(copy.delete(k));
        else { const v = rand(1000); o.set(k, v); copy.set(k, v); }
        expect(o.size).toBe(copy.size);
        expect(o.get(k)).toBe(copy.get(k));
        expect(o.has(k)).toBe(copy.has(k));
      }
      expect(new Map(o)).toEqual(copy);
      expect([...o.keys()].sort()).toEqual([...copy.keys()].sort());
      expect([...o.values()].sort()).toEqual([...copy.values()].sort());
      expect([...base]).toEqual(frozen);
      expect(o.commit()).toBe(base);
      expect(new Map(base)).toEqual(copy);
    }
  });
});
