/** Mutual exclusion per name: `run(name, fn)` waits for the previous holder of `name`, then runs `fn`. */
export function keyedLock(): <T>(name: string, fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<void>>();
  return async (name, fn) => {
    const prev = tails.get(name);
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    tails.set(name, mine);
    if (prev) await prev;
    try {
      return await fn();
    } finally {
      release();
      if (tails.get(name) === mine) tails.delete(name);
    }
  };
}
