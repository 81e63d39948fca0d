/**
 * A counting HTTP proxy in front of an S3 endpoint: tests assert on what went over the wire
 * (e.g. "a no-op push sends no PUT") without trusting the client's own accounting.
 */
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WireRequest { method: string; path: string; status: number; headers: IncomingHttpHeaders }

export interface CountingProxy {
  endpoint: string;
  requests: WireRequest[];
  /** Requests whose method matches and whose path (URL-decoded) contains `needle`. */
  count(method: string, needle?: string): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const t = new URL(target);
  const requests: WireRequest[] = [];
  const server = createServer((req, res) => {
    const upstream = request({
      host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers,
    }, (up) => {
      requests.push({ method: req.method ?? '?', path: safeDecode(req.url ?? ''), status: up.statusCode ?? 0, headers: req.headers });
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    count: (method, needle) => requests.filter((r) => r.method === method && (!needle || r.path.includes(needle))).length,
    reset: () => { requests.length = 0; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
