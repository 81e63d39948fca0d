import type PQueue from 'p-queue';

export interface Jobs {
  /** Queues a job; a failure is kept for `done()`, never left as an unhandled rejection (which ends the process). */
  add(job: () => Promise<void>): void;
  /** A job has failed: the jobs not started yet were dropped. */
  readonly failed: boolean;
  /** Waits for every job; throws the first failure, which is never swallowed as `onIdle()` alone would. */
  done(): Promise<void>;
}

/** Jobs on `queue` that fail fast: the first failure drops what has not started and is thrown by `done()`. */
export function jobsOn(queue: PQueue): Jobs {
  let failure: { err: unknown } | undefined;
  return {
    add(job) {
      queue.add(job).catch((err: unknown) => {
        if (failure) return;
        failure = { err };
        queue.clear();
      });
    },
    get failed() { return failure !== undefined; },
    async done() {
      await queue.onIdle();
      if (failure) throw failure.err;
    },
  };
}
