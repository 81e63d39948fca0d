/**
 * Data packs: the bytes of small files back to back in a few immutable objects per push
 * (`.sync/<ws>/packs/<name>.pack`, docs/design.md), so a batch of edits is one PUT of content and
 * a mount reads a whole source tree in a handful of range GETs. A file's location is known as soon
 * as it is added (the pack's name is chosen when it is opened); the pack must land before any
 * commit refers to it, which `finish` guarantees.
 */
import { randomBytes } from 'node:crypto';
import { packKey, type ObjectStore } from '@workspace-sync/shared';
import type { ContentLocation } from './planner.js';

/** Files up to this size go into packs; larger ones become blobs. */
export const PACK_MAX_FILE = 256 * 1024;
/** A pack is written once it holds this much. */
const PACK_SIZE = 4 * 1024 * 1024;
/**
 * Packs being written at once. Plain PUTs of the same files share the link, so on a slow uplink a
 * pack's PUT is slower than the files filling the next one: without a bound, every pack of an
 * initial push (400 MiB at 100k files) would wait in memory.
 */
const MAX_FLIGHTS = 4;

export function newObjectName(): string {
  return randomBytes(8).toString('hex');
}

export interface PackRecord {
  name: string;
  /** Every file in it: its sha256 and the location `add` returned for it. */
  members: Array<[string, ContentLocation]>;
}

export interface PackWriterOptions {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  /**
   * Called once a pack has landed (the journal records it so a crashed push does not send it again).
   * Its members' locations are the caller's from then on: the writer forgets them, so a push holds
   * one location per file, not one here and one in its record of what landed.
   */
  landed: (pack: PackRecord) => void;
  packSize?: number;
  maxFlights?: number;
}

interface OpenPack { name: string; buf: Buffer; size: number; members: PackRecord['members'] }

export class PackWriter {
  /** Files added whose pack has not landed yet. */
  readonly locations = new Map<string, ContentLocation>();
  readonly written: string[] = [];
  bytes = 0;
  private current: OpenPack | undefined;
  private readonly flights: Array<Promise<void>> = [];
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];
  private failure: unknown;

  constructor(private readonly opts: PackWriterOptions) {}

  /** Adds the bytes of a file whose sha256 is `sha256`; returns where they will be. */
  add(sha256: string, data: Buffer): ContentLocation {
    const known = this.locations.get(sha256);
    if (known) return known;
    const packSize = this.opts.packSize ?? PACK_SIZE;
    if (this.current && this.current.size + data.length > this.current.buf.length) this.flush();
    this.current ??= { name: newObjectName(), buf: Buffer.allocUnsafe(Math.max(packSize, data.length)), size: 0, members: [] };
    const pack = this.current;
    data.copy(pack.buf, pack.size);
    const loc: ContentLocation = { pack: pack.name, offset: pack.size, chunks: undefined };
    pack.members.push([sha256, loc]);
    pack.size += data.length;
    this.locations.set(sha256, loc);
    return loc;
  }

  /**
   * Resolves once fewer than the bound of packs are being written. Callers wait here before reading
   * more content, so a slow server holds back reading, not memory.
   */
  async room(): Promise<void> {
    while (this.inFlight >= (this.opts.maxFlights ?? MAX_FLIGHTS)) await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Writes what is still open and waits for every pack; throws the first failure. */
  async finish(): Promise<void> {
    this.flush();
    await Promise.all(this.flights);
    if (this.failure !== undefined) throw this.failure;
  }

  private flush(): void {
    const pack = this.current;
    this.current = undefined;
    if (!pack || pack.size === 0) return;
    const { store, prefix, workspace } = this.opts;
    const body = pack.buf.subarray(0, pack.size);
    this.inFlight++;
    this.flights.push(store.put(packKey(prefix, workspace, pack.name), body, { contentType: 'application/octet-stream' }).then(() => {
      this.written.push(pack.name);
      this.bytes += body.length;
      this.opts.landed({ name: pack.name, members: pack.members });
      for (const [sha256] of pack.members) this.locations.delete(sha256);
    }, (err: unknown) => { this.failure ??= err; }).finally(() => {
      this.inFlight--;
      for (const wake of this.waiting.splice(0)) wake();
    }));
  }
}
