import type PQueue from 'p-queue';

/**
 * Waits for jobs added to `queue`. The first failure drops the jobs that have not started, waits
 * for the running ones and is thrown: never an unhandled rejection (which would end the process),
 * never a failure swallowed by `onIdle()`.
 */
export async function settleAll(queue: PQueue, jobs: ReadonlyArray<Promise<unknown>>): Promise<void> {
  try {
    await Promise.all(jobs);
  } catch (err) {
    queue.clear();
    await queue.onIdle();
    throw err;
  }
}
