/**
 * Where a worker's built JavaScript is. The bundled CLI has each worker bundled next to it
 * (scripts/bundle.mjs), so a worker thread starts from one file instead of resolving and compiling
 * hundreds; tsc output and tests (which import src/: a worker gets no TypeScript transform) use dist/.
 */
export function workerUrl(name: string): URL {
  const bundled = new URL('.', import.meta.url).pathname.endsWith('/bundle/');
  return new URL(bundled ? `./${name}` : `../dist/${name}`, import.meta.url);
}
