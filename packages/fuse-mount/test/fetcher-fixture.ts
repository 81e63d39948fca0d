/** The Fetcher's test fixture over a given store: v1 nodes of uploaded objects, a fetcher with its cache, whole reads. */
import { stripEtag, objectKey, sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { withFaults, type FaultyStore } from '@workspace-sync/testkit';
import { ContentCache } from '../src/content-cache.js';
import { Fetcher, type FetcherOptions } from '../src/fetcher.js';
import { RemoteStatus } from '../src/remote-status.js';
import type { FileNode, V1Content } from '../src/tree.js';
import { quietLogger, removeDir, tempDir } from './helpers.js';

export function v1Node(key: string, etag: string, size: number, sha256: string | undefined): FileNode {
  return { kind: 'file', ino: 2, size, mtimeMs: 0, srcMtimeMs: 0, perm: 0o644, content: { format: 1, key, etag, sha256 } };
}

export const v1 = (node: FileNode) => node.content as V1Content;

export async function readAll(fetcher: Fetcher, node: FileNode, offset = 0, length = node.size): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const n = await fetcher.readInto(node, out, offset, length);
  return out.subarray(0, n);
}

export function fetcherFixture(store: () => ObjectStore, cleanups: Array<() => Promise<void> | void>) {
  async function upload(rel: string, body: Buffer): Promise<FileNode> {
    const key = objectKey('', 'ws', rel);
    const { etag } = await store().put(key, body);
    return v1Node(key, stripEtag(etag), body.length, sha256Hex(body));
  }

  async function setup(opts: Partial<FetcherOptions> & { faults?: FaultyStore; dir?: string } = {}) {
    const dir = opts.dir ?? tempDir('fetch-cache');
    const cache = await ContentCache.open({ dir, maxSize: 64 * 1024 * 1024, maxAge: 0, memSize: 0, logger: opts.logger ?? quietLogger });
    const faulty = opts.faults ?? withFaults(store());
    const status = new RemoteStatus();
    const fetcher = new Fetcher({ store: faulty, cache, status, logger: quietLogger, ...opts });
    cleanups.push(async () => { await fetcher.stop(); await cache.close(); removeDir(dir); });
    const gets = () => faulty.calls.filter((c) => c.op === 'get').length;
    return { fetcher, cache, faulty, status, gets };
  }

  return { upload, setup };
}
