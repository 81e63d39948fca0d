/**
 * A manual clock for the in-memory store, the fault wrapper and the loops that take a Clock (shared's
 * clock.ts: the watch loop, the mount's poller): a test moves it forward itself, so that delays,
 * hangs, backoffs and their deadlines never depend on timers.
 */
import { realClock, type Clock } from '@workspace-sync/shared';

export { realClock, type Clock };

export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, running the timers that fall due in time order (ties: first set, first run). */
  advance(ms: number): void;
  /** When the earliest timer set falls due; undefined when none is set. */
  nextAt(): number | undefined;
}

export function createManualClock(startMs = Date.UTC(2025, 0, 1)): ManualClock {
  let now = startMs;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimer(ms, fn) {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return () => { timers.delete(id); };
    },
    nextAt() {
      let at: number | undefined;
      for (const t of timers.values()) if (at === undefined || t.at < at) at = t.at;
      return at;
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let due: [number, { at: number; fn: () => void }] | undefined;
        for (const t of timers) if (t[1].at <= end && (!due || t[1].at < due[1].at)) due = t;
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
  };
}
