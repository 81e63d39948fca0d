/**
 * What a restart needs to serve the bucket with S3 down: the last head (commit) seen of every
 * format-v2 workspace, kept in `<cache-dir>/v1/heads.json` next to the content cache (tree packs
 * and content are in the cache itself). The file carries the sha256 of its payload and every commit
 * is validated again on load, so a damaged or foreign file is ignored, never served.
 */
import { randomUUID } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeCommit, sha256Hex, type Commit, type Logger } from '@workspace-sync/shared';

export interface SavedHead {
  etag: string;
  commit: Commit;
  /** The head's body as read. */
  body: Buffer;
}

interface Payload {
  bucket: string;
  prefix: string;
  heads: Record<string, { etag: string; body: string }>;
}

export class OfflineState {
  private readonly file: string;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private latest: Map<string, SavedHead> | undefined;

  constructor(cacheRoot: string, private readonly bucket: string, private readonly prefix: string, private readonly logger: Logger) {
    this.file = path.join(cacheRoot, 'heads.json');
  }

  /** The heads saved by an earlier run for this bucket and prefix (empty when none or unusable). */
  async load(): Promise<Map<string, SavedHead>> {
    const out = new Map<string, SavedHead>();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return out;
    }
    try {
      const { sha256, payload } = JSON.parse(text) as { sha256: string; payload: string };
      if (sha256Hex(payload) !== sha256) throw new Error('checksum mismatch');
      const p = JSON.parse(payload) as Payload;
      if (p.bucket !== this.bucket || p.prefix !== this.prefix) return out;
      for (const [ws, h] of Object.entries(p.heads)) {
        const body = Buffer.from(h.body, 'base64');
        const commit = decodeCommit(body, `${this.file}:${ws}`);
        if (commit.workspace === ws) out.set(ws, { etag: h.etag, commit, body });
      }
    } catch (err) {
      this.logger.warn({ file: this.file, err: (err as Error).message }, 'ignoring the saved heads of an earlier run: the file is damaged');
      out.clear();
    }
    return out;
  }

  /** Saves `heads` soon (writes are coalesced and atomic). */
  save(heads: Map<string, SavedHead>): void {
    this.latest = heads;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.write()).catch((err: unknown) => {
        this.logger.warn({ file: this.file, err: (err as Error).message }, 'cannot save the heads for an offline restart');
      });
    }, 200);
    this.timer.unref();
  }

  /** Writes what is pending now. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.writing = this.writing.then(() => this.write());
    }
    await this.writing.catch(() => undefined);
  }

  private async write(): Promise<void> {
    const heads = this.latest;
    if (!heads) return;
    const p: Payload = { bucket: this.bucket, prefix: this.prefix, heads: {} };
    for (const [ws, h] of heads) p.heads[ws] = { etag: h.etag, body: h.body.toString('base64') };
    const payload = JSON.stringify(p);
    const tmp = `${this.file}.${randomUUID()}`;
    await writeFile(tmp, JSON.stringify({ sha256: sha256Hex(payload), payload }));
    await rename(tmp, this.file);
  }
}
