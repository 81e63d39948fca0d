// Container health check for sync-agent and fuse-mount (the slim images have no curl).
// Healthy when GET /healthz on $HEALTH_PORT answers 200 (ok or degraded; 503 means down).
// With a path argument, that path must also be a FUSE mount point in this container, so a mount
// process that is alive but lost its mount is reported unhealthy too.
// Usage: node healthcheck.mjs [MOUNTPOINT]    Exit: 0 healthy, 1 unhealthy.
import { readFileSync } from 'node:fs';
import path from 'node:path';

function fail(message) {
  console.error(`unhealthy: ${message}`);
  process.exit(1);
}

/** Mount points of FUSE filesystems, from /proc/self/mountinfo (octal escapes such as \040 decoded). */
function fuseMountPoints() {
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).flatMap((line) => {
    const [left, right] = line.split(' - ');
    const fstype = right?.split(' ')[0] ?? '';
    return fstype === 'fuse' || fstype.startsWith('fuse.') ? [unescape(left.split(' ')[4])] : [];
  });
}

const port = Number(process.env.HEALTH_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  fail(`HEALTH_PORT is ${JSON.stringify(process.env.HEALTH_PORT ?? '')}; set it to the port the CLI serves /healthz on`);
}

const mountpoint = process.argv[2];
if (mountpoint && !fuseMountPoints().includes(path.resolve(mountpoint))) {
  fail(`${path.resolve(mountpoint)} is not a FUSE mount point`);
}

try {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(4000) });
  const body = (await res.text()).trim();
  if (res.status !== 200) fail(`/healthz answered ${res.status}: ${body}`);
  console.log(body);
} catch (err) {
  fail(`GET http://127.0.0.1:${port}/healthz failed: ${err.message}`);
}
