/**
 * Time as the long-running loops see it (the watch loop, the mount's poller): the real clock, or a
 * manual one a test moves forward itself (testkit's createManualClock), so that debounces, backoffs
 * and poll intervals are tested without sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms`; returns a function that cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};
