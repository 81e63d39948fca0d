/**
 * `/healthz` and `/metrics` (Prometheus text format) for both daemons, plus routes a daemon adds
 * (fuse-mount's `/events`). `/healthz` answers 200 for ok and degraded (still serving, e.g. S3 down
 * but caches work) and 503 for down.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as promClient from 'prom-client';
import type * as PromClient from 'prom-client';
import type { Registry as RegistryType } from 'prom-client';

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
  host?: string;
  registry: Registry;
  health: () => Health;
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
      const h = opts.health();
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
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
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
