/**
 * Polls `fn` until it returns something truthy (an error thrown counts as not yet) and returns it;
 * fails naming `what`, with the last error, after `timeoutMs`. For what a test cannot be told of
 * directly (another process, a mount, a server); in-process loops take a manual clock instead.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null, what: string, timeoutMs = 30_000, stepMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
