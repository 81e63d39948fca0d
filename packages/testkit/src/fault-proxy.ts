/**
 * A fault-injecting proxy in front of an S3 endpoint, on loopback, for reliability tests over real
 * sockets: it passes requests through and counts them, and can be switched at run time to reset
 * connections, answer 5xx, hang (accept and never answer: the silent endpoint), cut response bodies
 * short, or add latency, for every request or only those matching a method and path.
 *
 * Requests are forwarded with their headers unchanged (Host included), so SigV4 signatures made
 * for the proxy's address verify upstream. A failure to reach the upstream is passed on as a reset
 * connection, which is what the client would have seen without the proxy.
 */
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface WireRequest {
  method: string;
  /** URL-decoded path and query. */
  path: string;
  /** The status answered; 0 while in flight, or when the proxy reset or hung the request. */
  status: number;
  /** The fault applied to this request, if any. */
  fault?: ProxyFault['kind'];
  /** The request's headers as received (what the client signed). */
  headers: IncomingHttpHeaders;
  /** Body bytes forwarded upstream (headers not counted). */
  bytesIn: number;
  /** Body bytes of the upstream's answer passed back to the client (headers not counted). */
  bytesOut: number;
}

/** Which requests a fault applies to: every one by default. */
export interface RequestMatch {
  method?: string;
  /** A substring of, or a pattern for, the URL-decoded path and query. */
  path?: string | RegExp;
}

interface Scope {
  match?: RequestMatch;
  /** Apply to this many matching requests, then pass through again (default: until changed). */
  times?: number;
}

export type ProxyFault =
  | { kind: 'pass' }
  /** Reset the connection (TCP RST): new connections at once, and any request on an open one. */
  | ({ kind: 'reset' } & Scope)
  /** Answer with an S3 error: 503 SlowDown by default; 500 InternalError, or any status. */
  | ({ kind: 'error'; status?: number; code?: string } & Scope)
  /** Accept, read, and never answer. */
  | ({ kind: 'hang' } & Scope)
  /** Forward, then close the connection after `afterBytes` bytes of the response body. */
  | ({ kind: 'truncate'; afterBytes: number } & Scope);

export interface FaultProxy {
  /** http://127.0.0.1:PORT, to give clients instead of the upstream endpoint. */
  endpoint: string;
  port: number;
  /** Every request received, in arrival order. */
  requests: WireRequest[];
  /** Requests whose method matches and whose path (URL-decoded) contains `needle`. */
  count(method: string, needle?: string): number;
  /** Forgets the requests counted so far. */
  reset(): void;
  /** What to do with requests from now on (requests already in flight keep their fate). */
  fault(f: ProxyFault): void;
  /** Delay before each request is handled, in ms (0: none). */
  latency(ms: number): void;
  close(): Promise<void>;
}

const STATUS_CODES: Record<number, [string, string]> = {
  500: ['InternalError', 'We encountered an internal error. Please try again.'],
  503: ['SlowDown', 'Please reduce your request rate.'],
};

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const t = new URL(target);
  const requests: WireRequest[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const sockets = new Set<Socket>();
  let current: ProxyFault = { kind: 'pass' };
  let remaining = Infinity;
  let delay = 0;

  /** The fault for this request, counting it against `times`. */
  const faultFor = (req: IncomingMessage, path: string): Exclude<ProxyFault, { kind: 'pass' }> | undefined => {
    if (current.kind === 'pass' || remaining <= 0 || !matches(current.match, req.method ?? '', path)) return undefined;
    const f = current;
    if (--remaining <= 0) current = { kind: 'pass' };
    return f;
  };

  const server = createServer((req, res) => { handle(req, res).catch((err: Error) => res.destroy(err)); });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = safeDecode(req.url ?? '');
    const rec: WireRequest = { method: req.method ?? '?', path, status: 0, headers: req.headers, bytesIn: 0, bytesOut: 0 };
    requests.push(rec);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const f = faultFor(req, path);
    if (f) rec.fault = f.kind;
    switch (f?.kind) {
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'hang':
        // Read what the client sends, so it waits for an answer rather than on a full socket.
        req.resume();
        return;
      case 'error': {
        const status = f.status ?? 503;
        const [code, message] = STATUS_CODES[status] ?? ['ServiceUnavailable', `Injected HTTP ${status}.`];
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${f.code ?? code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
        req.resume();
        req.once('end', () => {
          rec.status = status;
          res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
          res.end(req.method === 'HEAD' ? undefined : body);
        });
        return;
      }
      default:
        forward(req, res, rec, f?.kind === 'truncate' ? f.afterBytes : undefined);
    }
  };

  const forward = (req: IncomingMessage, res: ServerResponse, rec: WireRequest, cutAfter: number | undefined) => {
    const upstream = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
      rec.status = up.statusCode ?? 0;
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (cutAfter === undefined) {
        up.on('data', (chunk: Buffer) => { rec.bytesOut += chunk.length; });
        up.pipe(res);
        return;
      }
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        if (sent >= cutAfter) return;
        const piece = chunk.subarray(0, cutAfter - sent);
        sent += piece.length;
        rec.bytesOut += piece.length;
        res.write(piece);
        if (sent >= cutAfter) {
          up.destroy();
          // What was written is flushed, then the connection ends mid-body.
          res.socket?.end();
        }
      });
      up.on('end', () => res.end());
    });
    upstream.on('error', () => {
      if (!res.headersSent) req.socket.resetAndDestroy();
      else res.destroy();
    });
    // Counted as it is piped (a 'data' listener added earlier would start the flow before the pipe).
    req.on('data', (chunk: Buffer) => { rec.bytesIn += chunk.length; });
    req.pipe(upstream);
  };

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A reset that applies to every request refuses connections themselves (not counted as requests).
    if (current.kind === 'reset' && !current.match && remaining > 0) {
      if (--remaining <= 0) current = { kind: 'pass' };
      socket.resetAndDestroy();
    }
  });
  // A keep-alive socket idle in the proxy must not outlive a client that expects it to stay.
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (method, needle) => requests.filter((r) => r.method === method && (!needle || r.path.includes(needle))).length,
    reset: () => { requests.length = 0; },
    fault: (f) => {
      current = f;
      remaining = f.kind === 'pass' ? Infinity : f.times ?? Infinity;
    },
    latency: (ms) => { delay = ms; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      agent.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The counting proxy of earlier tests: a fault proxy left passing everything through. */
export const startCountingProxy = startFaultProxy;
export type CountingProxy = FaultProxy;

function matches(m: RequestMatch | undefined, method: string, path: string): boolean {
  if (!m) return true;
  if (m.method && m.method.toUpperCase() !== method) return false;
  if (m.path === undefined) return true;
  return typeof m.path === 'string' ? path.includes(m.path) : m.path.test(path);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
