/**
 * What the bucket holds for one workspace. Trusted path: the manifest is unchanged since our last push
 * (one conditional GET answering 304), so the state index's copy of it is the truth. Otherwise (no state,
 * another machine pushed, the manifest vanished): fetch the manifest and list the workspace prefix, and
 * identify objects the manifest does not describe by their sha256 metadata where that can save an upload.
 */
import PQueue from 'p-queue';
import {
  decodeManifest, isSafeRelativePath, isSyncError, manifestKey, sha256Hex, workspacePrefix,
  type Manifest, type ManifestEntry, type ObjectStore, type PackInfo,
} from '@workspace-sync/shared';
import type { HashedEntry, RemoteObject } from './planner.js';
import type { JournalRecord, WorkspaceState } from './state.js';

export interface RemoteView {
  /** The committed manifest's entries; undefined when there is none. */
  committed: Map<string, ManifestEntry> | undefined;
  /** The committed manifest's packs (entries refer to them by index). */
  packs: PackInfo[];
  manifestEtag: string | undefined;
  generation: number;
  objects: Map<string, RemoteObject>;
  trusted: boolean;
  /** Requests this took (for --json and tests of the O(1) claim). */
  requests: number;
}

export function remoteFromEntry(e: ManifestEntry): RemoteObject {
  return e.type === 'file'
    ? { path: e.path, type: 'file', sha256: e.sha256, etag: e.etag, size: e.size }
    : { path: e.path, type: 'symlink', sha256: sha256Hex(e.target), etag: e.etag, size: Buffer.byteLength(e.target) };
}

export async function loadRemote(opts: {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  state: WorkspaceState | undefined;
  journal: JournalRecord[];
  local: ReadonlyMap<string, HashedEntry>;
  concurrency: number;
}): Promise<RemoteView> {
  const { store, prefix, workspace, state, journal, local } = opts;
  const key = manifestKey(prefix, workspace);
  let requests = 1;
  let manifest: Manifest | undefined;
  let etag: string | undefined;
  try {
    const res = await store.get(key, state?.manifestEtag ? { ifNoneMatch: state.manifestEtag } : {});
    if (res.notModified) {
      const objects = new Map(state!.entries.map((e) => [e.path, remoteFromEntry(e)]));
      for (const k of state!.pendingDeletes) {
        const p = k.slice(workspacePrefix(prefix, workspace).length);
        if (!objects.has(p)) objects.set(p, unknownObject(p, '', 0));
      }
      for (const j of journal) objects.set(j.path, { path: j.path, type: 'file', sha256: j.sha256, etag: j.etag, size: j.size });
      return {
        committed: new Map(state!.entries.map((e) => [e.path, e])), packs: Array.isArray(state!.packs) ? state!.packs : [], manifestEtag: state!.manifestEtag,
        generation: state!.generation, objects, trusted: true, requests,
      };
    }
    manifest = decodeManifest(res.body, `s3://${store.bucket}/${key}`);
    etag = res.etag;
  } catch (err) {
    if (!isSyncError(err, 'OBJECT_NOT_FOUND')) throw err;
  }

  // Full compare: the listing says what exists; the manifest and journal say what it is.
  const described = new Map<string, { sha256: string; etag: string; type: 'file' | 'symlink'; size: number }>();
  for (const e of manifest?.entries ?? []) described.set(e.path, remoteFromEntry(e));
  for (const j of journal) described.set(j.path, { sha256: j.sha256, etag: j.etag, type: 'file', size: j.size });

  const objects = new Map<string, RemoteObject>();
  const toIdentify: RemoteObject[] = [];
  const wsPrefix = workspacePrefix(prefix, workspace);
  for await (const item of store.list(wsPrefix)) {
    if ('commonPrefix' in item) continue;
    const p = item.key.slice(wsPrefix.length);
    if (!isSafeRelativePath(p)) continue;
    const d = described.get(p);
    if (d && d.etag === item.etag) { objects.set(p, { path: p, ...d }); continue; }
    const obj = unknownObject(p, item.etag, item.size);
    objects.set(p, obj);
    const mine = local.get(p);
    if (mine?.type === 'file' && mine.size === item.size) toIdentify.push(obj);
  }
  requests += 1; // listing pages are few; counted as one logical listing

  // An object with the same size as the local file may be the same bytes (a crashed push from another
  // machine, a previous tool): its sha256 metadata decides without re-uploading.
  const queue = new PQueue({ concurrency: opts.concurrency });
  for (const obj of toIdentify) {
    queue.add(async () => {
      const info = await store.head(`${wsPrefix}${obj.path}`);
      requests++;
      if (info?.metadata.sha256 && /^[0-9a-f]{64}$/.test(info.metadata.sha256)) {
        objects.set(obj.path, { ...obj, sha256: info.metadata.sha256, etag: info.etag });
      }
    });
  }
  await queue.onIdle();

  return {
    committed: manifest ? new Map(manifest.entries.map((e) => [e.path, e])) : undefined,
    packs: manifest?.packs ?? [],
    manifestEtag: etag,
    generation: manifest?.generation ?? 0,
    objects,
    trusted: false,
    requests,
  };
}

function unknownObject(p: string, etag: string, size: number): RemoteObject {
  // A sha256 that matches nothing: the object is overwritten or deleted, never trusted.
  return { path: p, type: 'file', sha256: `unknown:${etag}`, etag, size };
}
