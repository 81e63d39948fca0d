// The fault wrapper over the in-memory store: recording, scripted failures, hangs, truncation and crashes.
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SyncError, type ObjectStore } from '@workspace-sync/shared';
import { createManualClock } from '../src/clock.js';
import { SimulatedCrash, unreachable, withFaults, type FaultyStore } from '../src/faults.js';
import { createMemoryStore } from '../src/memory-store.js';

const MiB = 1024 * 1024;
const md5 = (s: string) => createHash('md5').update(s).digest('hex');
/** Lets every pending promise callback run (the memory store answers within a few microtask turns). */
const settle = () => new Promise((r) => setImmediate(r));

/** A promise's state after pending callbacks ran, without waiting for it. */
async function state(p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  let s: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(() => { s = 'resolved'; }, () => { s = 'rejected'; });
  await settle();
  return s;
}

describe('withFaults: recording', () => {
  it('records every call with its op, key, overall index and index within its op', async () => {
    const inner = createMemoryStore();
    const store = withFaults(inner);
    await store.headBucket();
    await store.put('a', Buffer.from('1'));
    await store.get('a');
    await store.copy('a', 'b');
    await store.put('c', Buffer.from('2'));
    await store.deleteMany(['b', 'c']);
    for await (const _ of store.list('p/')) { /* drain */ }
    for await (const _ of store.listUploads('q/')) { /* drain */ }
    await store.abortUpload('a', 'id');
    expect(store.calls).toEqual([
      { op: 'headBucket', key: '', index: 0, opIndex: 0 },
      { op: 'put', key: 'a', index: 1, opIndex: 0 },
      { op: 'get', key: 'a', index: 2, opIndex: 0 },
      { op: 'copy', key: 'b', source: 'a', index: 3, opIndex: 0 },
      { op: 'put', key: 'c', index: 4, opIndex: 1 },
      { op: 'deleteMany', key: 'b', keys: ['b', 'c'], index: 5, opIndex: 0 },
      { op: 'list', key: 'p/', index: 6, opIndex: 0 },
      { op: 'listUploads', key: 'q/', index: 7, opIndex: 0 },
      { op: 'abortUpload', key: 'a', index: 8, opIndex: 0 },
    ]);
    expect([...inner.snapshot().keys()]).toEqual(['a']);
  });

  it('keeps the first version\'s plan working: fail(op, key, index) and latencyMs, both changeable at any time', async () => {
    const clock = createManualClock();
    const store = withFaults(createMemoryStore(), { fail: (op) => (op === 'get' ? unreachable() : undefined), clock });
    await store.put('k', Buffer.from('v'));
    await expect(store.get('k')).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    store.plan.fail = undefined;
    store.plan.latencyMs = 100;
    const slow = store.get('k');
    clock.advance(99);
    expect(await state(slow)).toBe('pending');
    clock.advance(1);
    expect(await state(slow)).toBe('resolved');
  });
});

describe('withFaults: failures and delays', () => {
  it('fails the call a rule selects: by overall index, by op and nth, by key pattern, by predicate', async () => {
    const store = withFaults(createMemoryStore());
    const byIndex = store.failWhen({ index: 1 }, unreachable());
    const thirdPut = store.failWhen({ op: 'put', nth: 2 }, (call) => new SyncError('S3_ERROR', `injected on ${call.key}`));
    const manifest = store.failWhen({ op: ['put', 'copy'], key: /^\.sync\// }, unreachable());
    const pred = store.failWhen((call) => call.op === 'head' && call.opIndex === 1, unreachable());
    const results = await Promise.allSettled([
      store.put('a', Buffer.from('0')), // 0
      store.put('b', Buffer.from('1')), // 1: index 1
      store.put('c', Buffer.from('2')), // 2: the third put
      store.put('d', Buffer.from('3')), // 3
      store.put('.sync/ws', Buffer.from('m')), // 4
      store.head('a'), // 5
      store.head('a'), // 6: the second head
      store.put('e', Buffer.from('5')), // 7
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason.message).toBe('injected on c');
    expect([byIndex.hits, thirdPut.hits, manifest.hits, pred.hits]).toEqual([1, 1, 1, 1]);
    manifest.remove();
    await store.put('.sync/ws', Buffer.from('m'));
    expect(manifest.hits).toBe(1);
  });

  it('lets the first matching rule act, while every matching delay adds up', async () => {
    const clock = createManualClock();
    const store = withFaults(createMemoryStore(), { clock });
    store.delayWhen({ op: 'put' }, 30);
    store.failWhen({ op: 'put' }, unreachable());
    store.failWhen({ op: 'put' }, new Error('never used'));
    store.delayWhen({ key: 'k' }, 20);
    const p = store.put('k', Buffer.from('x'));
    clock.advance(49);
    expect(await state(p)).toBe('pending');
    clock.advance(1);
    await expect(p).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
  });
});

describe('withFaults: hangs', () => {
  it('holds a call until release(): before release nothing reached the store, after it the call completes', async () => {
    const inner = createMemoryStore();
    const store = withFaults(inner);
    const hang = store.hangWhen({ op: 'put' });
    const p = store.put('k', Buffer.from('v'));
    expect(await state(p)).toBe('pending');
    expect(await inner.head('k')).toBeUndefined();
    store.release();
    await expect(p).resolves.toEqual({ etag: md5('v') });
    expect(hang.hits).toBe(1);
  });

  it('turns a hang into ENDPOINT_UNREACHABLE at its deadline, like the real client; "after" hangs have landed by then', async () => {
    const clock = createManualClock();
    const inner = createMemoryStore();
    const store = withFaults(inner, { clock });
    store.hangWhen({ key: 'lost' }, { deadlineMs: 10_000 });
    store.hangWhen({ key: 'landed' }, { deadlineMs: 10_000, when: 'after' });
    const lost = store.put('lost', Buffer.from('v'));
    const landed = store.put('landed', Buffer.from('v'));
    clock.advance(9_999);
    expect([await state(lost), await state(landed)]).toEqual(['pending', 'pending']);
    clock.advance(1);
    await expect(lost).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE', message: expect.stringContaining('during PUT s3://workspaces/lost') });
    await expect(landed).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    expect(await inner.head('lost')).toBeUndefined();
    expect(await inner.head('landed')).toMatchObject({ etag: md5('v') });
  });

  it('ends a hung get when the caller\'s AbortSignal fires, with the error the real store gives', async () => {
    const store = withFaults(createMemoryStore());
    await store.put('k', Buffer.from('v'));
    store.hangWhen({ op: 'get' });
    const ctl = new AbortController();
    const p = store.get('k', { signal: ctl.signal });
    expect(await state(p)).toBe('pending');
    ctl.abort();
    await expect(p).rejects.toMatchObject({ code: 'S3_ERROR', message: expect.stringContaining('AbortError') });
    await expect(store.get('k', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'S3_ERROR' });
  });
});

describe('withFaults: truncation', () => {
  it('hands back the first bytes of a GET body only, the size still the object\'s', async () => {
    const store = withFaults(createMemoryStore());
    await store.put('k', Buffer.from('0123456789'));
    const t = store.truncateWhen({ key: 'k' }, 4);
    const got = await store.get('k');
    expect(got.notModified ? undefined : [got.body.toString(), got.size]).toEqual(['0123', 10]);
    expect(await store.head('k')).toMatchObject({ size: 10 });
    expect(t.hits).toBe(1);
  });
});

describe('withFaults: crashes', () => {
  it('crash before: the request never reaches the store, the caller never hears, every later call is a SimulatedCrash', async () => {
    const inner = createMemoryStore();
    const store = withFaults(inner);
    store.crashAt({ index: 1, when: 'before' });
    await store.put('a', Buffer.from('1'));
    const p = store.put('b', Buffer.from('2'));
    expect(await state(p)).toBe('pending');
    expect(store.crashed).toBe(true);
    expect(store.crashedAt).toMatchObject({ op: 'put', key: 'b', index: 1 });
    const later = await store.get('a').catch((e: unknown) => e);
    expect(later).toBeInstanceOf(SimulatedCrash);
    expect((later as SimulatedCrash).call).toMatchObject({ op: 'get', key: 'a', index: 2 });
    expect([...inner.snapshot().keys()]).toEqual(['a']);
  });

  it('crash after: the write landed, the caller never hears; calls in flight never settle, even when they land', async () => {
    const inner = createMemoryStore();
    const store = withFaults(inner);
    store.crashAt({ op: 'put', key: 'b', when: 'after' });
    store.hangWhen({ key: 'held' });
    const held = store.put('held', Buffer.from('h'));
    const b = store.put('b', Buffer.from('2'));
    expect([await state(held), await state(b)]).toEqual(['pending', 'pending']);
    store.release();
    expect(await state(held)).toBe('pending');
    expect([...inner.snapshot().keys()]).toEqual(['b']);
  });

  it('untilCrash waits for the work or the crash, whichever comes first', async () => {
    const crashing = withFaults(createMemoryStore());
    crashing.crashAt({ index: 0, when: 'before' });
    expect(await crashing.untilCrash(crashing.put('k', Buffer.from('v')))).toEqual({ crashed: true });
    const clean = withFaults(createMemoryStore());
    expect(await clean.untilCrash(clean.put('k', Buffer.from('v')))).toEqual({ crashed: false, value: { etag: md5('v') } });
    const failing = withFaults(createMemoryStore());
    const out = await failing.untilCrash(failing.get('missing'));
    expect(out).toMatchObject({ crashed: false, error: { code: 'OBJECT_NOT_FOUND' } });
  });

  it('leaves a multipart upload in progress when the process dies mid-stream, and closes the caller\'s stream', async () => {
    const inner = createMemoryStore();
    const store = withFaults(inner);
    const stream = new PassThrough();
    const done = store.upload('big', stream, { partSize: 5 * MiB });
    stream.write(Buffer.alloc(5 * MiB + 1));
    await settle();
    store.crash();
    expect(stream.destroyed).toBe(true);
    expect(await state(done)).toBe('pending');
    const uploads = [];
    for await (const u of inner.listUploads('')) uploads.push(u);
    expect(uploads).toEqual([{ key: 'big', uploadId: expect.any(String), initiated: expect.any(Date) }]);
    expect(await inner.head('big')).toBeUndefined();
    await expect(store.put('x', Buffer.from('x'))).rejects.toBeInstanceOf(SimulatedCrash);
  });

  // The loop a "crash at every step" test runs, on a miniature push: upload what changed, delete what
  // went away, publish the manifest last with a conditional write.
  it('drives a crash-at-every-step loop to byte-exact convergence', async () => {
    const before = { 'a.txt': 'a1', 'b.txt': 'b1', 'gone.txt': 'g1' };
    const after = { 'a.txt': 'a2', 'b.txt': 'b1', 'new.txt': 'n1' };
    const seed = async () => {
      const s = createMemoryStore();
      await push(s, before);
      return s;
    };
    const expected = await seed();
    await push(expected, after);
    const contents = (s: ReturnType<typeof createMemoryStore>) =>
      [...s.snapshot()].map(([k, o]) => [k, o.body.toString(), o.etag, o.metadata]);

    const cleanRun = withFaults(await seed());
    await push(cleanRun, after);
    let crashes = 0;
    for (const when of ['before', 'after'] as const) {
      for (let i = 0; ; i++) {
        const inner = await seed();
        const faulty: FaultyStore = withFaults(inner);
        faulty.crashAt({ index: i, when });
        const outcome = await faulty.untilCrash(push(faulty, after));
        if (!outcome.crashed) {
          expect(outcome.error).toBeUndefined();
          expect(i).toBe(cleanRun.calls.length);
          break;
        }
        crashes++;
        expect(faulty.crashedAt?.index).toBe(i);
        await push(inner, after);
        expect(contents(inner), `crash ${when} call ${i} (${faulty.crashedAt?.op} ${faulty.crashedAt?.key})`).toEqual(contents(expected));
      }
    }
    expect(crashes).toBe(2 * cleanRun.calls.length);
  });
});

async function push(store: ObjectStore, files: Record<string, string>): Promise<void> {
  const remote = new Map<string, string>();
  for await (const e of store.list('ws/')) if ('key' in e) remote.set(e.key, e.etag);
  await Promise.all(Object.entries(files)
    .filter(([name, text]) => remote.get(`ws/${name}`) !== md5(text))
    .map(([name, text]) => store.put(`ws/${name}`, Buffer.from(text), { metadata: { sha256: createHash('sha256').update(text).digest('hex') } })));
  const stale = [...remote.keys()].filter((k) => !(k.slice(3) in files));
  if (stale.length) await store.deleteMany(stale);
  const current = await store.head('.sync/ws');
  const manifest = Buffer.from(JSON.stringify(Object.entries(files).sort()));
  if (current?.etag === md5(manifest.toString())) return;
  await store.put('.sync/ws', manifest, current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
}
