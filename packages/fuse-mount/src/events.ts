/**
 * Change events: what the mount made visible, streamed as Server-Sent Events on the health port
 * (`GET /events`), so a monitor learns of every push without walking the tree.
 *
 * Events (the `event:` field; `data:` is one JSON object):
 * - `generation`: a workspace now shows a new version. `generation` is the commit's (or v1
 *   manifest's) generation, `previous` the one shown before: when it is not `generation - 1`,
 *   several pushes landed between two polls and this event covers all of them. `changes` lists the
 *   paths (`added`, `modified`, `deleted`, at most MAX_EVENT_PATHS in all, `truncated` when there
 *   were more; `counts` are complete), or is null when they are not known: then treat the whole
 *   workspace as changed. Sources of the paths: the commit's own `changes` when its parent is the
 *   commit shown before (no request); otherwise the net difference of the two trees (the tree
 *   objects on the changed paths; what was added and deleted again in between does not appear);
 *   for v1 manifests and plain prefixes, the difference of the two snapshots (in memory).
 * - `workspace-added` / `workspace-removed`: a workspace appeared in or left the mount root.
 * - `state`: sent first on a connection that does not resume: every subscribed workspace with
 *   the generation it shows. `lost: true` says that the Last-Event-ID given could not be resumed
 *   (the mount restarted, or the event fell out of the replay buffer): compare generations.
 *
 * Resuming: every event's id is `<boot>.<seq>` (boot: the process, seq: its event counter). A
 * client that reconnects with `Last-Event-ID` gets the events it missed from a bounded replay
 * buffer; `?since=<ws>:<generation>` (repeatable) instead replays from the bucket's history (v2):
 * one `generation` event per workspace from that generation to the current one, which works across
 * mount restarts. `?workspace=<ws>` (repeatable) subscribes to some workspaces only.
 *
 * Cost: nothing is computed or kept until the first client connects (until then no client can
 * hold an id of this process). Each client's unsent output is bounded (a client that does not read
 * is disconnected; it resumes with Last-Event-ID); one heartbeat comment per interval, for all
 * clients, keeps proxies from closing an idle stream.
 *
 * Concurrency rules: events of one workspace are built one after the other (a tree diff may take
 * a few requests), so they keep the order of the installs; a new client is registered in the same
 * tick as its snapshot of the current views, and events that arrive while its replay is computed
 * wait in its queue.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { diffTrees, type Logger } from '@workspace-sync/shared';
import type { History } from './history.js';
import type { MountMetrics } from './metrics.js';
import type { Node, Snapshot, Tree, WorkspaceKind } from './tree.js';
import type { TreeStore } from './tree-store.js';
import { CommitView, type View } from './views.js';

/** Paths listed in one event, as in a commit's `changes`. */
export const MAX_EVENT_PATHS = 1000;

export interface ChangeSet {
  added: string[];
  modified: string[];
  deleted: string[];
  counts: { added: number; modified: number; deleted: number };
  truncated: boolean;
}

export interface GenerationEvent {
  workspace: string;
  kind: WorkspaceKind;
  generation: number | null;
  previous: number | null;
  /** Commit stem (v2); null otherwise. */
  commit: string | null;
  /** When the version was made (the writer's clock; the workspace directory's mtime for v2). */
  time: string | null;
  /** When the mount made it visible (the mount's clock). */
  seenAt: string;
  changes: ChangeSet | null;
  /** Rebuilt from the bucket's history for `?since=` rather than seen live. */
  replayed?: true;
}

export interface WorkspaceInfo {
  workspace: string;
  kind: WorkspaceKind;
  generation: number | null;
  commit: string | null;
  time: string | null;
}

export interface EventHubOptions {
  tree: Tree;
  trees: TreeStore;
  history: History;
  logger: Logger;
  metrics?: MountMetrics | undefined;
  /** Between heartbeat comments on open streams (default 15 s). */
  heartbeatMs?: number;
  /** Replay buffer: events and bytes kept for Last-Event-ID (defaults 1,024 and 4 MiB). */
  bufferEvents?: number;
  bufferBytes?: number;
  /** Unsent output per client before it is disconnected (default 1 MiB). */
  clientBufferBytes?: number;
  now?: () => number;
}

interface Frame {
  seq: number;
  workspace: string;
  text: string;
}

interface Client {
  res: ServerResponse;
  only: Set<string> | undefined;
  /** Frames that arrived while the connection's replay was being computed. */
  waiting: Frame[] | undefined;
}

const ID = /^([0-9a-z]+)\.(\d+)$/;

export class EventHub {
  private readonly boot: string;
  private seq = 0;
  private active = false;
  private readonly buffer: Frame[] = [];
  private bufferedBytes = 0;
  private readonly clients = new Set<Client>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly chains = new Map<string, Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly opts: EventHubOptions) {
    this.now = opts.now ?? Date.now;
    this.boot = this.now().toString(36);
    opts.tree.onInstall((state, previous, next) => {
      if (!this.active) return;
      // A plain prefix is listed when first used: nothing changed, the mount only learnt it.
      if (!previous && next.source === 'listing') return;
      const seenAt = new Date(this.now()).toISOString();
      this.chain(state.name, async () => {
        const event = await this.generationEvent(state.name, state.kind, previous, next, seenAt);
        if (event) this.publish('generation', state.name, event);
      });
    });
    opts.tree.onMembership((added, removed) => {
      if (!this.active) return;
      for (const { name, kind } of added) this.chain(name, async () => this.publish('workspace-added', name, { workspace: name, kind }));
      for (const name of removed) this.chain(name, async () => this.publish('workspace-removed', name, { workspace: name }));
    });
  }

  /** Open event streams. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** The `GET /events` handler. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://mount');
    const only = url.searchParams.getAll('workspace').flatMap((v) => v.split(',')).filter(Boolean);
    const since = parseSince(url.searchParams.getAll('since'));
    if (since === undefined) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad since: expected <workspace>:<generation>, e.g. since=www:12\n');
      return;
    }
    this.active = true;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx buffers responses unless told not to.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    const client: Client = { res, only: only.length > 0 ? new Set(only) : undefined, waiting: [] };
    this.clients.add(client);
    this.opts.metrics?.eventClients.set(this.clients.size);
    res.on('close', () => {
      this.clients.delete(client);
      this.opts.metrics?.eventClients.set(this.clients.size);
      if (this.clients.size === 0) this.stopHeartbeat();
    });
    this.startHeartbeat();

    const lastId = header(req, 'last-event-id');
    const resumed = lastId !== undefined && this.resume(client, lastId);
    if (!resumed) this.send(client, this.frame('state', '', { workspaces: this.workspaces(client.only), lost: lastId !== undefined }, false));
    // The views as they are now; events installed after this tick wait in `waiting`.
    const from = resumed ? [] : [...since].filter(([ws]) => this.wants(client, ws)).map(([ws, gen]) => {
      const state = this.opts.tree.get(ws);
      return { ws, gen, kind: state?.kind, view: state?.view };
    });
    void (async () => {
      for (const f of from) {
        if (!f.view || !f.kind || f.view.generation === undefined || String(f.view.generation) === f.gen || f.view.version === f.gen) continue;
        const event = await this.replay(f.ws, f.kind, f.gen, f.view);
        if (res.destroyed) return;
        this.send(client, this.frame('generation', f.ws, event, false));
      }
      const waiting = client.waiting ?? [];
      client.waiting = undefined;
      for (const frame of waiting) this.send(client, frame);
    })().catch((err: unknown) => {
      this.opts.logger.warn({ err: (err as Error).message }, 'event replay failed; closing the stream');
      res.destroy();
    });
  }

  /** Ends every stream (the server is closing). */
  close(): void {
    this.stopHeartbeat();
    for (const c of this.clients) c.res.destroy();
    this.clients.clear();
  }

  private resume(client: Client, lastId: string): boolean {
    const m = ID.exec(lastId.trim());
    if (!m || m[1] !== this.boot) return false;
    const after = Number(m[2]);
    if (after > this.seq) return false;
    // Everything after `after` must still be in the buffer.
    const oldest = this.buffer[0]?.seq ?? this.seq + 1;
    if (after + 1 < oldest) return false;
    for (const f of this.buffer) if (f.seq > after && this.wants(client, f.workspace)) client.waiting!.push(f);
    return true;
  }

  private chain(workspace: string, step: () => Promise<void>): void {
    const next = (this.chains.get(workspace) ?? Promise.resolve()).then(step).catch((err: unknown) => {
      this.opts.logger.warn({ workspace, err: (err as Error).message }, 'building a change event failed');
    });
    this.chains.set(workspace, next);
    void next.finally(() => { if (this.chains.get(workspace) === next) this.chains.delete(workspace); });
  }

  private publish(type: string, workspace: string, data: object): void {
    const frame = this.frame(type, workspace, data, true);
    this.buffer.push(frame);
    this.bufferedBytes += frame.text.length;
    const maxEvents = this.opts.bufferEvents ?? 1024;
    const maxBytes = this.opts.bufferBytes ?? 4 * 1024 * 1024;
    while (this.buffer.length > maxEvents || (this.bufferedBytes > maxBytes && this.buffer.length > 1)) {
      this.bufferedBytes -= this.buffer.shift()!.text.length;
    }
    this.opts.metrics?.events.inc({ type });
    for (const c of this.clients) if (this.wants(c, workspace)) this.deliver(c, frame);
  }

  /** `next` (counted): a new event with the next id; otherwise the current id (state and replays). */
  private frame(type: string, workspace: string, data: object, next: boolean): Frame {
    const seq = next ? ++this.seq : this.seq;
    return { seq, workspace, text: `id: ${this.boot}.${seq}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n` };
  }

  private wants(c: Client, workspace: string): boolean {
    return !c.only || workspace === '' || c.only.has(workspace);
  }

  /** A live event: written now, or queued behind the replay the connection is still computing. */
  private deliver(c: Client, frame: Frame): void {
    if (!c.waiting) return this.send(c, frame);
    c.waiting.push(frame);
    if (c.waiting.length > (this.opts.bufferEvents ?? 1024)) c.res.destroy();
  }

  private send(c: Client, frame: Frame): void {
    if (c.res.destroyed) return;
    c.res.write(frame.text);
    // A client that does not read: drop it rather than buffer without end (it resumes with Last-Event-ID).
    if (c.res.writableLength > (this.opts.clientBufferBytes ?? 1024 * 1024)) {
      this.opts.logger.debug({ buffered: c.res.writableLength }, 'event client does not keep up; disconnecting it');
      c.res.destroy();
    }
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) if (!c.res.destroyed) c.res.write(': keep-alive\n\n');
    }, this.opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private workspaces(only: Set<string> | undefined): WorkspaceInfo[] {
    const out: WorkspaceInfo[] = [];
    for (const name of this.opts.tree.names()) {
      if (only && !only.has(name)) continue;
      const state = this.opts.tree.get(name)!;
      out.push({ workspace: name, kind: state.kind, ...versionOf(state.view) });
    }
    return out;
  }

  private async generationEvent(
    workspace: string, kind: WorkspaceKind, previous: View | undefined, next: View, seenAt: string,
  ): Promise<GenerationEvent | undefined> {
    if (previous && previous.source !== 'listing' && previous.version === next.version) return undefined;
    let changes: ChangeSet | null = null;
    if (next instanceof CommitView) {
      const parent = next.commit.parent;
      // The commit's own list is relative to its parent: exact when that is what was shown (or nothing, for a first commit).
      if (previous instanceof CommitView) changes = parent === previous.version ? fromCommit(next) : await this.diff(workspace, previous, next);
      else if (!previous && parent === null) changes = fromCommit(next);
    } else if (previous && 'nodes' in previous && 'nodes' in next) {
      changes = diffSnapshots(previous as Snapshot, next as Snapshot);
      // A listing refreshed after --dir-cache-time that found nothing new is not an event.
      if (next.source === 'listing' && changes.counts.added + changes.counts.modified + changes.counts.deleted === 0) return undefined;
    }
    return { workspace, kind, ...versionOf(next), previous: previous?.generation ?? null, seenAt, changes };
  }

  /** `?since=`: from generation `gen` (a number or a commit stem) to `view`, from the bucket's history. */
  private async replay(workspace: string, kind: WorkspaceKind, gen: string, view: View): Promise<GenerationEvent> {
    const previous = /^\d+$/.test(gen) ? Number(gen) : Number(gen.slice(0, 12));
    const event: GenerationEvent = {
      workspace, kind, ...versionOf(view), previous, seenAt: new Date(view.builtAt).toISOString(), changes: null, replayed: true,
    };
    if (!(view instanceof CommitView)) return event;
    try {
      const old = await this.opts.history.view(workspace, gen, view.builtAt);
      if (old) event.changes = await this.diff(workspace, old, view);
    } catch (err) {
      this.opts.logger.debug({ workspace, since: gen, err: (err as Error).message }, 'cannot replay from history; the event says "unknown"');
    }
    return event;
  }

  private async diff(workspace: string, a: CommitView, b: CommitView): Promise<ChangeSet> {
    const d = await diffTrees(this.opts.trees.reader(workspace), a.commit.root, b.commit.root);
    return capped(d.added.map((e) => e.path), d.modified.map((m) => m.after.path), d.deleted.map((e) => e.path), false);
  }
}

function versionOf(view: View | undefined): Pick<WorkspaceInfo, 'generation' | 'commit' | 'time'> {
  return {
    generation: view?.generation ?? null,
    commit: view instanceof CommitView ? view.version : null,
    time: view?.createdAt ?? null,
  };
}

function fromCommit(view: CommitView): ChangeSet {
  const c = view.commit.changes;
  const set = capped(c.paths.added, c.paths.modified, c.paths.deleted, c.truncated);
  set.counts = { added: c.added, modified: c.modified, deleted: c.deleted };
  return set;
}

/** At most MAX_EVENT_PATHS paths in all, in the order added, modified, deleted. */
function capped(added: readonly string[], modified: readonly string[], deleted: readonly string[], truncated: boolean): ChangeSet {
  let room = MAX_EVENT_PATHS;
  const take = (list: readonly string[]) => {
    const out = list.slice(0, room);
    room -= out.length;
    return out;
  };
  const set: ChangeSet = {
    added: take(added), modified: take(modified), deleted: take(deleted),
    counts: { added: added.length, modified: modified.length, deleted: deleted.length }, truncated,
  };
  set.truncated ||= set.added.length + set.modified.length + set.deleted.length < added.length + modified.length + deleted.length;
  return set;
}

/** v1 snapshots and listings: files and symlinks added, changed (content or target) and gone. */
export function diffSnapshots(a: Pick<Snapshot, 'nodes'>, b: Pick<Snapshot, 'nodes'>): ChangeSet {
  const added: string[] = [];
  const modified: string[] = [];
  const deleted: string[] = [];
  for (const [rel, node] of b.nodes) {
    if (node.kind === 'dir') continue;
    const old = a.nodes.get(rel);
    if (!old || old.kind === 'dir') added.push(rel);
    else if (!sameContent(old, node)) modified.push(rel);
  }
  for (const [rel, node] of a.nodes) {
    if (node.kind === 'dir') continue;
    const now = b.nodes.get(rel);
    if (!now || now.kind === 'dir') deleted.push(rel);
  }
  return capped(added.sort(), modified.sort(), deleted.sort(), false);
}

function sameContent(a: Exclude<Node, { kind: 'dir' }>, b: Exclude<Node, { kind: 'dir' }>): boolean {
  if (a.kind === 'symlink' || b.kind === 'symlink') return a.kind === b.kind && (a as { target: string }).target === (b as { target: string }).target;
  const x = a.content;
  const y = b.content;
  if (x.format === 1 && y.format === 1) return x.etag === y.etag && (x.sha256 === undefined || x.sha256 === y.sha256) && a.perm === b.perm;
  return a.size === b.size && x.sha256 === y.sha256 && a.perm === b.perm;
}

/** `since` values: `<ws>:<generation or commit stem>`, repeatable or comma-separated; undefined: malformed. */
function parseSince(values: string[]): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const item of values.flatMap((v) => v.split(',')).filter(Boolean)) {
    const colon = item.lastIndexOf(':');
    const ws = item.slice(0, colon);
    const gen = item.slice(colon + 1);
    if (colon <= 0 || !/^(\d{1,15}|\d{12}-[0-9a-f]{16})$/.test(gen)) return undefined;
    out.set(ws, gen);
  }
  return out;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
