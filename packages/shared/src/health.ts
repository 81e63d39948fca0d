/**
 * `/healthz` and `/metrics` (Prometheus text format) for both daemons, plus routes a daemon adds
 * (fuse-mount's `/events`). `/healthz` answers 200 for ok and degraded (still serving, e.g. S3 down
 * but caches work) and 503 for down.
 *
 * Anyone who reaches the port may read them: they may name workspaces but never what is in them,
 * so every s3:// URL in a health answer is cut down to its workspace, and metrics are labelled by
 * workspace at most. They listen on loopback unless told otherwise (--health-address).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as promClient from 'prom-client';
import type * as PromClient from 'prom-client';
import type { Registry as RegistryType } from 'prom-client';
import { keyOutline } from './paths.js';

const { collectDefaultMetrics } = promClient;
export const { Counter, Gauge, Histogram, Registry } = promClient;
export type Registry = RegistryType;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;

export type HealthStatus = 'ok' | 'degraded' | 'down';

export interface Health {
  status: HealthStatus;
  reasons: string[];
  [detail: string]: unknown;
}

/** Handles `GET <path>` (any query string); it owns the response from then on. */
export type Route = (req: IncomingMessage, res: ServerResponse) => void;

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export function createRegistry(prefix: string): Registry {
  const registry = new promClient.Registry();
  // The event-loop lag histogram samples every 10 ms by default: too busy for an idle daemon.
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: 100 });
  return registry;
}

export async function startHealthServer(opts: {
  port: number;
  /** Default 127.0.0.1: only this host. */
  host?: string;
  registry: Registry;
  health: () => Health;
  /** The workspaces' key prefix, to cut object keys in health answers down to their workspace. */
  prefix?: string;
  routes?: Record<string, Route>;
  /** Runs before the connections are closed. */
  onClose?: () => void;
}): Promise<HealthServer> {
  const routes = new Map(Object.entries(opts.routes ?? {}));
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    const route = routes.get(url);
    if (route && req.method === 'GET') {
      route(req, res);
      return;
    }
    if (url === '/healthz') {
      const h = outlineKeys(opts.health(), opts.prefix ?? '') as Health;
      res.writeHead(h.status === 'down' ? 503 : 200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(h)}\n`);
      return;
    }
    if (url === '/metrics') {
      opts.registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': opts.registry.contentType }); res.end(text); },
        (err: Error) => { res.writeHead(500); res.end(err.message); },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`not found: try ${['/healthz', '/metrics', ...routes.keys()].join(', ')}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      opts.onClose?.();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Every s3:// URL in the value, with the key (and whatever follows it) cut down by keyOutline. */
export function outlineKeys(value: unknown, prefix: string): unknown {
  if (typeof value === 'string') return value.replace(/(s3:\/\/[^/\s]+\/)(.*)$/s, (_m, head: string, key: string) => head + keyOutline(prefix, key));
  if (Array.isArray(value)) return value.map((v) => outlineKeys(v, prefix));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, outlineKeys(v, prefix)]));
  return value;
}
