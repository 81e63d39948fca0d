/** Object keys and the path rules both sides enforce on untrusted input. */

/** Top-level control prefix, beside the workspaces; never a workspace (names starting with "." are not). */
export const CONTROL_DIR = '.sync';

const MAX_SEGMENT_BYTES = 255;
const MAX_PATH_BYTES = 4096;

/**
 * A relative path that cannot escape its root: no empty, "." or ".." segments, no NUL,
 * no leading slash, no over-long names. Used for manifest entries and listed keys alike.
 */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.includes('\0') || p.startsWith('/') || Buffer.byteLength(p) > MAX_PATH_BYTES) return false;
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.' || seg === '..' || Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) return false;
  }
  return true;
}

export function isValidWorkspaceName(name: string): boolean {
  return isSafeRelativePath(name) && !name.includes('/') && !name.startsWith('.');
}

export function workspacePrefix(prefix: string, workspace: string): string {
  return `${prefix}${workspace}/`;
}

export function objectKey(prefix: string, workspace: string, relPath: string): string {
  return `${prefix}${workspace}/${relPath}`;
}

export function manifestKey(prefix: string, workspace: string): string {
  return `${prefix}${CONTROL_DIR}/${workspace}/manifest.json.gz`;
}

/** Where packs of small files live (see manifest.ts); `id` is the pack's sha256. */
export function packsPrefix(prefix: string, workspace: string): string {
  return `${prefix}${CONTROL_DIR}/${workspace}/packs/`;
}

export function packKey(prefix: string, workspace: string, id: string): string {
  return `${packsPrefix(prefix, workspace)}${id}.pack`;
}

/** The workspace whose manifest this key is, or undefined. */
export function workspaceOfManifestKey(prefix: string, key: string): string | undefined {
  const head = `${prefix}${CONTROL_DIR}/`;
  if (!key.startsWith(head) || !key.endsWith('/manifest.json.gz')) return undefined;
  const ws = key.slice(head.length, -'/manifest.json.gz'.length);
  return isValidWorkspaceName(ws) ? ws : undefined;
}

/** Where every workspace's head lives: one LIST of this prefix gives all heads and their ETags. */
export function headsPrefix(prefix: string): string {
  return `${prefix}${CONTROL_DIR}/.heads/`;
}

export function headKey(prefix: string, workspace: string): string {
  return `${headsPrefix(prefix)}${workspace}`;
}

/** Everything of a workspace's format-v2 store lives under here (see docs/design.md). */
export function controlPrefix(prefix: string, workspace: string): string {
  return `${prefix}${CONTROL_DIR}/${workspace}/`;
}

export function commitsPrefix(prefix: string, workspace: string): string {
  return `${controlPrefix(prefix, workspace)}commits/`;
}

export function commitKey(prefix: string, workspace: string, stem: string): string {
  return `${commitsPrefix(prefix, workspace)}${stem}.json`;
}

export function treePacksPrefix(prefix: string, workspace: string): string {
  return `${controlPrefix(prefix, workspace)}trees/`;
}

export function treePackKey(prefix: string, workspace: string, name: string): string {
  return `${treePacksPrefix(prefix, workspace)}${name}.pack`;
}

export function blobsPrefix(prefix: string, workspace: string): string {
  return `${controlPrefix(prefix, workspace)}blobs/`;
}

export function blobKey(prefix: string, workspace: string, sha256: string): string {
  return `${blobsPrefix(prefix, workspace)}${sha256}`;
}

/**
 * The workspace an object key belongs to (a plain object, a control object or a head), or
 * undefined for keys outside every workspace (the prefix itself, `.sync/`, `.sync/.heads/`).
 */
export function workspaceOfKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const heads = `${CONTROL_DIR}/.heads/`;
  let name: string | undefined;
  if (rest.startsWith(heads)) name = rest.slice(heads.length);
  else if (rest.startsWith(`${CONTROL_DIR}/`)) name = /^([^/]+)\//.exec(rest.slice(CONTROL_DIR.length + 1))?.[1];
  else name = /^([^/]+)\//.exec(rest)?.[1];
  return name !== undefined && isValidWorkspaceName(name) ? name : undefined;
}

/**
 * A key cut down to the workspace it belongs to, for places that may name workspaces but not
 * what is in them (health endpoints): `p/www/src/secret.ts` → `p/www/…`.
 */
export function keyOutline(prefix: string, key: string): string {
  const ws = workspaceOfKey(prefix, key);
  if (ws === undefined) return [prefix, `${prefix}${CONTROL_DIR}/`, headsPrefix(prefix)].includes(key) ? key : `${prefix}…`;
  if (key === headKey(prefix, ws)) return key;
  return key.startsWith(controlPrefix(prefix, ws)) ? `${controlPrefix(prefix, ws)}…` : `${workspacePrefix(prefix, ws)}…`;
}
