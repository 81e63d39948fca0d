/**
 * A failure-injecting ObjectStore wrapper for reliability tests. It records every call and, by
 * rules the test adds, fails, delays, hangs, truncates or crashes chosen ones: the Nth call
 * overall (`{ index }`), the Nth of an op or key pattern (`{ op, key, nth }`), or any predicate.
 *
 * Crash model (`crashAt`, `crash`): the process was killed with SIGKILL at that call, either before
 * the request reached the server or after it landed there without the answer coming back. From then
 * on, calls in flight never settle (the code awaiting them never runs again), new calls reject with
 * SimulatedCrash, upload streams stop feeding the store and are closed, and the inner store keeps
 * exactly what landed. `untilCrash(work)` waits for the work or the crash, whichever comes first.
 *
 * Hang model (`hangWhen`): the request is sent and nothing comes back, until `release()`, the
 * caller's AbortSignal (get), or the optional deadline, which fails it with ENDPOINT_UNREACHABLE as
 * the real client's per-request deadline does. Timing uses the plan's clock (real by default; a
 * manual clock makes delays and deadlines deterministic).
 *
 * Rules are checked in the order they were added at the moment of the call: every matching delay
 * applies, then the first matching rule of another kind acts.
 */
import { Readable } from 'node:stream';
import { SyncError, translateS3Error, type GetResult, type ObjectStore } from '@workspace-sync/shared';
import { realClock, type Clock } from './clock.js';

export type Op =
  | 'get' | 'head' | 'put' | 'upload' | 'copy' | 'deleteMany' | 'list' | 'listUploads' | 'abortUpload' | 'headBucket' | 'createBucket';

export interface Call {
  op: Op;
  /** The object key; copy: the destination; list and listUploads: the prefix; deleteMany: the first key; bucket calls: ''. */
  key: string;
  /** Position among all calls of this wrapper, from 0. */
  index: number;
  /** Position among this wrapper's calls of the same op, from 0. */
  opIndex: number;
  /** copy: the source key. */
  source?: string;
  /** deleteMany: every key. */
  keys?: readonly string[];
}

/** Which calls a rule applies to; every field given must hold. */
export interface CallMatch {
  index?: number;
  op?: Op | readonly Op[];
  /** Exact key, or a pattern tested against it. */
  key?: string | RegExp;
  test?: (call: Call) => boolean;
  /** Only the nth (from 0) of the calls the other fields select. */
  nth?: number;
}
export type Matcher = CallMatch | ((call: Call) => boolean);

export type CrashPoint = 'before' | 'after';

export interface HangOptions {
  /** 'after': the request lands on the server and only the answer hangs (default 'before'). */
  when?: CrashPoint;
  /** Fails the call with ENDPOINT_UNREACHABLE after this many ms of the plan's clock. */
  deadlineMs?: number;
}

/** A rule the test added: how often it acted, and a way to take it back. */
export interface Fault {
  readonly hits: number;
  remove(): void;
}

/** The fields kept from the first version of this wrapper; read at every call, so tests may change them. */
export interface FaultPlan {
  /** Returns an error to throw for this call, or undefined to let it through. */
  fail?: (op: Op, key: string, callIndex: number) => Error | undefined;
  /** Delay before every call. */
  latencyMs?: number;
  /** Time for delays and deadlines (default: real time). */
  clock?: Clock;
}

export interface CrashOutcome<T> {
  crashed: boolean;
  value?: T;
  error?: unknown;
}

export interface FaultyStore extends ObjectStore {
  readonly calls: readonly Call[];
  plan: FaultPlan;
  /** The call the crash happened at (undefined: crash() between calls), once crashed. */
  readonly crashedAt: Call | undefined;
  readonly crashed: boolean;
  failWhen(match: Matcher, error: Error | ((call: Call) => Error)): Fault;
  delayWhen(match: Matcher, ms: number): Fault;
  hangWhen(match: Matcher, opts?: HangOptions): Fault;
  /** GET only: the call succeeds with just the first `bytes` of the body (size still the object's). */
  truncateWhen(match: Matcher, bytes: number): Fault;
  crashAt(at: CallMatch & { when: CrashPoint }): Fault;
  /** Crashes now, between calls. */
  crash(): void;
  /** Lets every call hanging now go on (later matches hang again until their rule is removed). */
  release(): void;
  untilCrash<T>(work: Promise<T>): Promise<CrashOutcome<T>>;
}

export class SimulatedCrash extends Error {
  constructor(readonly call: Call) {
    super(`simulated crash: ${call.op} ${call.key} (call #${call.index}) after the process was killed`);
    this.name = 'SimulatedCrash';
  }
}

export function unreachable(): SyncError {
  return new SyncError('ENDPOINT_UNREACHABLE', 'injected: cannot reach S3 endpoint', { hint: 'injected fault' });
}

/** The real store's name for each op in its error messages. */
const OP_LABEL: Record<Op, string> = {
  get: 'GET', head: 'HEAD', put: 'PUT', upload: 'multipart upload', copy: 'COPY', deleteMany: 'DeleteObjects', list: 'LIST',
  listUploads: 'ListMultipartUploads', abortUpload: 'AbortMultipartUpload', headBucket: 'HEAD bucket', createBucket: 'CreateBucket',
};

type Action =
  | { kind: 'fail'; error: Error | ((call: Call) => Error) }
  | { kind: 'delay'; ms: number }
  | { kind: 'hang'; when: CrashPoint; deadlineMs: number | undefined }
  | { kind: 'truncate'; bytes: number }
  | { kind: 'crash'; when: CrashPoint };

interface Rule { match: Matcher; action: Action; seen: number; hits: number }

const never = <T>(): Promise<T> => new Promise<T>(() => {});

export function withFaults(inner: ObjectStore, plan: FaultPlan = {}): FaultyStore {
  const calls: Call[] = [];
  const perOp = new Map<Op, number>();
  let rules: Rule[] = [];
  const hanging = new Set<{ release: () => void; drop: () => void }>();
  const bodies = new Set<Readable>();
  let crashedAt: Call | undefined;
  let crashed = false;
  let announceCrash!: () => void;
  const crashSignal = new Promise<void>((resolve) => { announceCrash = resolve; });
  const clock = () => store.plan.clock ?? realClock;

  const crashNow = (call: Call | undefined) => {
    if (crashed) return;
    crashed = true;
    crashedAt = call;
    for (const h of hanging) h.drop();
    // A killed process holds no files: the caller's upload streams close (without an error).
    for (const b of bodies) b.destroy();
    announceCrash();
  };

  const addRule = (match: Matcher, action: Action): Fault => {
    const rule: Rule = { match, action, seen: 0, hits: 0 };
    rules.push(rule);
    return { get hits() { return rule.hits; }, remove() { rules = rules.filter((r) => r !== rule); } };
  };

  const selects = (rule: Rule, call: Call): boolean => {
    const m = rule.match;
    if (rule.action.kind === 'truncate' && call.op !== 'get') return false;
    if (typeof m === 'function') return m(call);
    if (m.index !== undefined && m.index !== call.index) return false;
    if (m.op !== undefined && !(typeof m.op === 'string' ? m.op === call.op : m.op.includes(call.op))) return false;
    if (m.key !== undefined && !(typeof m.key === 'string' ? m.key === call.key : m.key.test(call.key))) return false;
    if (m.test && !m.test(call)) return false;
    return m.nth === undefined || rule.seen++ === m.nth;
  };

  /** Decided the moment the call is made, so that timers start then (a manual clock sees them at once). */
  const decide = (call: Call): { delayMs: number; action: Action | undefined } => {
    let delayMs = store.plan.latencyMs ?? 0;
    let action: Action | undefined;
    for (const rule of rules) {
      if (!selects(rule, call)) continue;
      if (rule.action.kind === 'delay') delayMs += rule.action.ms;
      else if (action) continue;
      else action = rule.action;
      rule.hits++;
    }
    const legacy = store.plan.fail?.(call.op, call.key, call.index);
    if (!action && legacy) action = { kind: 'fail', error: legacy };
    return { delayMs, action };
  };

  const sleep = (ms: number) => new Promise<void>((resolve) => clock().setTimer(ms, resolve));

  /** Waits for release(), the caller's signal or the deadline; never settles if the process crashes meanwhile. */
  const hang = (call: Call, deadlineMs: number | undefined, signal: AbortSignal | undefined) => new Promise<void>((resolve, reject) => {
    const stop = () => {
      hanging.delete(entry);
      cancelTimer?.();
      signal?.removeEventListener('abort', onAbort);
    };
    const entry = { release: () => { stop(); resolve(); }, drop: stop };
    const onAbort = () => { stop(); reject(failure(call, Object.assign(new Error('Request aborted'), { name: 'AbortError' }))); };
    hanging.add(entry);
    const cancelTimer = deadlineMs === undefined ? undefined : clock().setTimer(deadlineMs, () => {
      stop();
      reject(failure(call, Object.assign(new Error(`no answer within ${deadlineMs} ms`), { name: 'TimeoutError' })));
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });

  /** What the real store makes of this SDK error on this call. */
  const failure = (call: Call, err: Error) => translateS3Error(err, {
    op: OP_LABEL[call.op], bucket: inner.bucket, key: call.op === 'copy' ? `${call.source} -> ${call.key}` : call.key || undefined,
    endpoint: inner.endpointLabel,
  });

  /** The caller only ever hears back from a process that is still alive. */
  const delivered = async <T>(p: Promise<T>): Promise<T> => {
    let value: T;
    try {
      value = await p;
    } catch (err) {
      if (crashed) return never();
      throw err;
    }
    if (crashed) return never();
    return value;
  };

  const perform = async <T>(call: Call, run: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    if (crashed) throw new SimulatedCrash(call);
    const { delayMs, action } = decide(call);
    if (delayMs > 0) await delivered(sleep(delayMs));
    switch (action?.kind) {
      case 'fail':
        throw typeof action.error === 'function' ? action.error(call) : action.error;
      case 'crash':
        if (action.when === 'after') await run().catch(() => undefined);
        crashNow(call);
        return never();
      case 'hang':
        if (action.when === 'after') {
          const result = run();
          result.catch(() => undefined);
          await delivered(hang(call, action.deadlineMs, signal));
          return delivered(result);
        }
        await delivered(hang(call, action.deadlineMs, signal));
        break;
      case 'truncate': {
        const result = await delivered(run());
        const r = result as GetResult;
        return (r.notModified ? r : { ...r, body: r.body.subarray(0, action.bytes) }) as T;
      }
      case 'delay': // applied above
      case undefined:
        break;
    }
    return delivered(run());
  };

  const invoke = <T>(op: Op, key: string, run: () => Promise<T>, extra: Pick<Call, 'source' | 'keys'> = {}, signal?: AbortSignal) => {
    const opIndex = perOp.get(op) ?? 0;
    perOp.set(op, opIndex + 1);
    const call: Call = { op, key, index: calls.length, opIndex, ...extra };
    calls.push(call);
    return perform(call, run, signal);
  };

  /** The upload's stream as the inner store sees it: after a crash it never gets another byte. */
  const feed = (body: Readable): Readable => Readable.from((async function* () {
    try {
      for await (const chunk of body) {
        if (crashed) await never();
        yield chunk as Buffer;
      }
    } catch (err) {
      if (crashed) await never();
      throw err;
    }
    if (crashed) await never();
  })(), { objectMode: false });

  const store: FaultyStore = {
    calls,
    plan,
    get crashedAt() { return crashedAt; },
    get crashed() { return crashed; },
    bucket: inner.bucket,
    endpointLabel: inner.endpointLabel,

    get: (key, opts) => invoke('get', key, () => inner.get(key, opts), {}, opts?.signal),
    head: (key) => invoke('head', key, () => inner.head(key)),
    put: (key, body, opts) => invoke('put', key, () => inner.put(key, body, opts)),
    upload(key, body, opts) {
      if (!crashed) {
        bodies.add(body);
        body.once('close', () => bodies.delete(body));
      }
      return invoke('upload', key, () => inner.upload(key, feed(body), opts));
    },
    copy: (src, dst, opts) => invoke('copy', dst, () => inner.copy(src, dst, opts), { source: src }),
    deleteMany: (keys) => invoke('deleteMany', keys[0] ?? '', () => inner.deleteMany(keys), { keys }),
    // A listing is one call here, however many pages the inner store fetches.
    async *list(prefix, opts) {
      yield* await invoke('list', prefix, async () => {
        const entries = [];
        for await (const e of inner.list(prefix, opts)) entries.push(e);
        return entries;
      });
    },
    async *listUploads(prefix) {
      yield* await invoke('listUploads', prefix, async () => {
        const uploads = [];
        for await (const u of inner.listUploads(prefix)) uploads.push(u);
        return uploads;
      });
    },
    abortUpload: (key, uploadId) => invoke('abortUpload', key, () => inner.abortUpload(key, uploadId)),
    headBucket: () => invoke('headBucket', '', () => inner.headBucket()),
    createBucket: () => invoke('createBucket', '', () => inner.createBucket()),

    failWhen: (match, error) => addRule(match, { kind: 'fail', error }),
    delayWhen: (match, ms) => addRule(match, { kind: 'delay', ms }),
    hangWhen: (match, opts = {}) => addRule(match, { kind: 'hang', when: opts.when ?? 'before', deadlineMs: opts.deadlineMs }),
    truncateWhen: (match, bytes) => addRule(match, { kind: 'truncate', bytes }),
    crashAt: ({ when, ...match }) => addRule(match, { kind: 'crash', when }),
    crash: () => crashNow(undefined),
    release() {
      for (const h of [...hanging]) h.release();
    },
    async untilCrash(work) {
      return Promise.race([
        work.then((value) => (crashed ? { crashed } : { crashed, value }), (error: unknown) => (crashed ? { crashed } : { crashed, error })),
        crashSignal.then(() => ({ crashed: true })),
      ]);
    },
  };
  return store;
}
