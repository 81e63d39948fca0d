/**
 * The per-workspace manifest: the commit point of a push and the mount's whole view of a workspace.
 * Stored gzip-compressed JSON at `<prefix>.sync/<workspace>/manifest.json.gz`. The format is documented in
 * the README; readers treat it as untrusted input and validate every field and path.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import * as z from 'zod/mini';
import './zod.js';
import { SyncError } from './errors.js';
import { isSafeRelativePath, isValidWorkspaceName } from './paths.js';

export const MANIFEST_FORMAT = 'workspace-sync.manifest';
export const MANIFEST_VERSION = 1;

const safePath = z.string().check(z.refine(isSafeRelativePath, { message: 'unsafe path' }));
const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/));

const FileEntrySchema = z.object({
  path: safePath,
  type: z.literal('file'),
  size: z.int().check(z.nonnegative()),
  // Any finite time: files dated before 1970 exist (extracted archives, some toolchains).
  mtimeMs: z.number(),
  /** Permission bits (e.g. 0o755 = 493). */
  mode: z.int().check(z.minimum(0), z.maximum(0o7777)),
  sha256,
  etag: z.string(),
  /** `[index into packs, byte offset]`: where a copy of these bytes sits in a pack (see PackSchema). */
  pack: z.optional(z.tuple([z.int().check(z.nonnegative()), z.int().check(z.nonnegative())])),
});

/**
 * A pack is one object holding copies of many small files back to back, at
 * `<prefix>.sync/<workspace>/packs/<id>.pack`, where id is the sha256 of its bytes. It only speeds
 * up bulk reads (a mount fetches a whole tree in a few GETs instead of one per file); readers check
 * every file cut from it against the entry's sha256 and fall back to the file's own object.
 */
const PackSchema = z.object({
  id: sha256,
  size: z.int().check(z.positive()),
  etag: z.string(),
});

const SymlinkEntrySchema = z.object({
  path: safePath,
  type: z.literal('symlink'),
  target: z.string().check(z.minLength(1), z.maxLength(4096), z.refine((t) => !t.includes('\0'), { message: 'NUL in symlink target' })),
  mtimeMs: z.number(),
  etag: z.string(),
});

const EntrySchema = z.discriminatedUnion('type', [FileEntrySchema, SymlinkEntrySchema]);

const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  workspace: z.string().check(z.refine(isValidWorkspaceName, { message: 'invalid workspace name' })),
  generation: z.int().check(z.nonnegative()),
  createdAt: z.string(),
  writer: z.object({ host: z.string(), agent: z.string() }),
  entries: z.array(EntrySchema),
  packs: z.optional(z.array(PackSchema)),
});

export type FileEntry = z.infer<typeof FileEntrySchema>;
export type PackInfo = z.infer<typeof PackSchema>;
export type SymlinkEntry = z.infer<typeof SymlinkEntrySchema>;
export type ManifestEntry = FileEntry | SymlinkEntry;
export type Manifest = z.infer<typeof ManifestSchema>;

export function encodeManifest(m: Manifest): Buffer {
  const sorted = { ...m, entries: [...m.entries].sort((a, b) => compareUtf8(a.path, b.path)) };
  return gzipSync(Buffer.from(JSON.stringify(sorted)), { level: 6 });
}

/** Parses and validates a manifest; `where` names it in errors. */
export function decodeManifest(body: Buffer, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(gunzipSync(body).toString('utf8'));
  } catch (cause) {
    throw new SyncError('MANIFEST_INVALID', `manifest ${where} is not gzip-compressed JSON`, {
      hint: 'it was not written by sync-agent or is damaged; push the workspace again to replace it', cause,
    });
  }
  const { version, format } = (raw ?? {}) as { version?: unknown; format?: unknown };
  if (format === MANIFEST_FORMAT && typeof version === 'number' && version > MANIFEST_VERSION) {
    throw new SyncError('MANIFEST_TOO_NEW', `manifest ${where} has format version ${version}; this build reads ${MANIFEST_VERSION}`, {
      hint: 'upgrade workspace-sync on this machine',
    });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SyncError('MANIFEST_INVALID', `manifest ${where} is invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}`, {
      hint: 'push the workspace again to replace it',
    });
  }
  const seen = new Set<string>();
  for (const e of parsed.data.entries) {
    if (seen.has(e.path)) {
      throw new SyncError('MANIFEST_INVALID', `manifest ${where} lists ${JSON.stringify(e.path)} twice`, {
        hint: 'push the workspace again to replace it',
      });
    }
    seen.add(e.path);
  }
  const packs = parsed.data.packs ?? [];
  for (const e of parsed.data.entries) {
    if (e.type !== 'file' || !e.pack) continue;
    const pack = packs[e.pack[0]];
    if (!pack || e.pack[1] + e.size > pack.size) {
      throw new SyncError('MANIFEST_INVALID', `manifest ${where} places ${JSON.stringify(e.path)} outside its packs`, {
        hint: 'push the workspace again to replace it',
      });
    }
  }
  // A path cannot be both a file and a directory: no ancestor of an entry may itself be an entry.
  for (const e of parsed.data.entries) {
    for (let i = e.path.indexOf('/'); i !== -1; i = e.path.indexOf('/', i + 1)) {
      if (seen.has(e.path.slice(0, i))) {
        throw new SyncError('MANIFEST_INVALID', `manifest ${where} lists ${JSON.stringify(e.path.slice(0, i))} both as a file and as a directory`, {
          hint: 'push the workspace again to replace it',
        });
      }
    }
  }
  return parsed.data;
}

/**
 * Byte-wise UTF-8 order: what S3 listings use, so manifests and listings sort alike. Compared on UTF-16
 * code units without allocating; only surrogates (code points above U+FFFF) need moving above U+E000-U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return utf8Rank(x) - utf8Rank(y);
  }
  return a.length - b.length;
}

function utf8Rank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit <= 0xdfff ? unit + 0x2000 : unit - 0x800;
}
