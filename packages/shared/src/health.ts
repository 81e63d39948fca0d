/**
 * `/healthz` and `/metrics` (Prometheus text format) for both daemons. `/healthz` answers 200 for
 * ok and degraded (still serving, e.g. S3 down but caches work) and 503 for down.
 */
import { createServer, type Server } from 'node:http';
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
}): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
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
    res.end('not found: try /healthz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
