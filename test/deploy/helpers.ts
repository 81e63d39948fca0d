/**
 * Readers for the deployment files under docker/: the compose file as Compose would see it with
 * .env.example as its .env, the Dockerfile's stages and instructions, kustomize directories, and the
 * CLIs' real option table (imported from packages/shared, never copied).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { OPTIONS, type Scope } from '../../packages/shared/src/config.js';

export { OPTIONS };

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DOCKER = path.join(REPO, 'docker');
export const K8S = path.join(DOCKER, 'k8s');

export const read = (file: string): string => readFileSync(file, 'utf8');

/** Standard AWS credential variables: read by the SDK's credential chain inside both CLIs, not part of the option table. */
export const AWS_CREDENTIALS = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE',
  'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE',
];

export function envNames(scope?: Scope): Set<string> {
  return new Set(OPTIONS.filter((o) => !scope || o.scope.includes(scope)).flatMap((o) => o.env));
}

export function flagNames(scope: Scope): Set<string> {
  return new Set(OPTIONS.filter((o) => o.scope.includes(scope)).map((o) => o.flag.split(' ')[0]!));
}

/** `--flag` tokens (with `--flag=value` cut at `=`) in a command line given as an argv array. */
export function flagsIn(argv: readonly unknown[]): string[] {
  return argv.filter((a): a is string => typeof a === 'string' && a.startsWith('--')).map((a) => a.split('=')[0]!);
}

export function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

// ---------------------------------------------------------------------------------------------
// env files and Compose interpolation

/** KEY=VALUE lines of an env file (comments and blank lines skipped, surrounding quotes removed). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    out[m[1]!] = m[2]!.trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/** Commented-out examples such as `# CACHE_MAX_SIZE=1G`. */
export function commentedExamples(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^#\s*([A-Z][A-Z0-9_]*)=(\S*)\s*$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g;

/** Names referenced as `${NAME}`, `${NAME:-default}` or `${NAME:?error}`. */
export function interpolationNames(text: string): Set<string> {
  return new Set([...text.matchAll(REF)].map((m) => m[1]!));
}

/** Compose's variable substitution; a missing `${NAME:?msg}` throws like `docker compose` fails. */
export function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(REF, (_all, name: string, op: string | undefined, arg: string | undefined) => {
    const value = env[name];
    const unset = value === undefined || (op?.startsWith(':') && value === '');
    if (op?.endsWith('-')) return unset ? arg! : value!;
    if (op?.endsWith('?')) {
      if (unset) throw new Error(`required variable ${name} is missing: ${arg}`);
      return value!;
    }
    return value ?? '';
  });
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; target: string };
  platform?: string;
  command?: string[];
  entrypoint?: string[];
  depends_on?: Record<string, { condition: string }>;
  env_file?: string | string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: Array<string | ComposeVolume>;
  devices?: string[];
  cap_add?: string[];
  cap_drop?: string[];
  security_opt?: string[];
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string };
  init?: boolean;
  read_only?: boolean;
  stop_signal?: string;
  stop_grace_period?: string;
  restart?: string;
  [key: string]: unknown;
}

export interface ComposeVolume {
  type: string;
  source: string;
  target: string;
  read_only?: boolean;
  bind?: { propagation?: string; create_host_path?: boolean };
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

export const COMPOSE_FILE = path.join(DOCKER, 'docker-compose.yml');
export const ENV_EXAMPLE = path.join(DOCKER, '.env.example');

/** The compose file with docker/.env.example used as docker/.env. */
export function loadCompose(): ComposeFile {
  const env = parseEnvFile(read(ENV_EXAMPLE));
  return parse(interpolate(read(COMPOSE_FILE), env), { merge: true }) as ComposeFile;
}

/** What a service's process sees: its env_file(s) (relative to docker/), then `environment` on top. */
export function serviceEnv(service: ComposeService): Record<string, string> {
  const files = service.env_file === undefined ? [] : [service.env_file].flat();
  const fromFiles = files.map((f) => {
    // docker/.env is the user's copy of .env.example, which the tests stand in for.
    const file = path.join(DOCKER, f === '.env' ? '.env.example' : f);
    return parseEnvFile(read(file));
  });
  return Object.assign({}, ...fromFiles, service.environment ?? {}) as Record<string, string>;
}

/** Long-syntax volumes of a service, with short `source:/path[:ro][,propagation]` entries normalised. */
export function serviceVolumes(service: ComposeService): ComposeVolume[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return v;
    const [source, target, mode = ''] = v.split(':') as [string, string, string | undefined];
    const type = source.startsWith('.') || source.startsWith('/') ? 'bind' : 'volume';
    const options = mode.split(',');
    const propagation = options.find((o) => /^r?(shared|slave|private)$/.test(o));
    return { type, source, target, read_only: options.includes('ro'), ...(propagation ? { bind: { propagation } } : {}) };
  });
}

/** Compose durations (`30s`, `1m30s`) in seconds. */
export function composeSeconds(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(h|m|s|ms|us)/g)) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 }[m[2] as 'h' | 'm' | 's' | 'ms' | 'us'];
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

export interface Instruction {
  keyword: string;
  /** `--name=value` flags (COPY, ADD, HEALTHCHECK, RUN). */
  flags: Record<string, string>;
  /** The rest of the line after the keyword and its flags, continuation lines joined. */
  text: string;
}

export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

export const DOCKERFILE = path.join(DOCKER, 'Dockerfile');

export function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full) logical.push(full);
  }
  const result: Dockerfile = { globalArgs: {}, stages: [] };
  for (const line of logical) {
    const [, keyword, rest] = /^(\S+)\s*(.*)$/.exec(line)!;
    const upper = keyword!.toUpperCase();
    if (upper === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest!)!;
      result.stages.push({ image: m[1]!, name: m[2], instructions: [] });
      continue;
    }
    if (result.stages.length === 0) {
      if (upper === 'ARG') {
        const [name, value] = rest!.split('=');
        result.globalArgs[name!] = value ?? '';
      }
      continue;
    }
    const flags: Record<string, string> = {};
    let body = rest!;
    for (let m = /^--([a-z-]+)=(\S+)\s+/.exec(body); m; m = /^--([a-z-]+)=(\S+)\s+/.exec(body)) {
      flags[m[1]!] = m[2]!;
      body = body.slice(m[0].length);
    }
    result.stages.at(-1)!.instructions.push({ keyword: upper, flags, text: body.replace(/\s+/g, ' ').trim() });
  }
  return result;
}

export function loadDockerfile(): Dockerfile {
  return parseDockerfile(read(DOCKERFILE));
}

export function stage(df: Dockerfile, name: string): Stage {
  const s = df.stages.find((st) => st.name === name);
  if (!s) throw new Error(`Dockerfile has no stage ${name}`);
  return s;
}

export function instructions(s: Stage, keyword: string): Instruction[] {
  return s.instructions.filter((i) => i.keyword === keyword);
}

/** COPY/ADD sources and destination, exec (JSON) or shell form. */
export function copyArgs(i: Instruction): { sources: string[]; dest: string } {
  const parts = i.text.startsWith('[') ? (JSON.parse(i.text) as string[]) : i.text.split(' ');
  return { sources: parts.slice(0, -1), dest: parts.at(-1)! };
}

/** `KEY=value` pairs of ENV or LABEL instructions (values may be double-quoted). */
export function keyValues(list: Instruction[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of list) {
    for (const m of i.text.matchAll(/([A-Za-z_][\w.-]*)=(?:"([^"]*)"|(\S*))/g)) out[m[1]!] = m[2] ?? m[3]!;
  }
  return out;
}

/** The JSON argv of ENTRYPOINT, CMD or `HEALTHCHECK ... CMD [...]`. */
export function execForm(i: Instruction): string[] {
  const json = i.keyword === 'HEALTHCHECK' ? i.text.replace(/^.*?CMD\s+/, '') : i.text;
  return JSON.parse(json) as string[];
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

export interface K8sDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface Kustomization {
  namespace?: string;
  resources: string[];
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  /** Inline patches; those with `$patch: delete` remove an object of the resources. */
  patches?: Array<{ patch: string }>;
}

export const OVERLAYS = ['base', 'sidecar', 'daemonset', 'monitoring', 'csi', 'irsa'] as const;

export function loadKustomization(dir: string): Kustomization {
  return parse(read(path.join(dir, 'kustomization.yaml'))) as Kustomization;
}

export function parseYamlDocs(file: string): K8sDoc[] {
  return parseAllDocuments(read(file)).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as K8sDoc;
  });
}

/** The documents of a kustomize directory as written: no transformers applied, objects a `$patch: delete` removes left out. */
export function kustomizationDocs(dir: string): K8sDoc[] {
  const k = loadKustomization(dir);
  const deleted = (k.patches ?? []).map((p) => parse(p.patch) as K8sDoc & { $patch?: string })
    .filter((p) => p.$patch === 'delete').map((p) => `${p.kind}/${p.metadata.name}`);
  return k.resources.flatMap((r) => {
    const p = path.resolve(dir, r);
    return isDir(p) ? kustomizationDocs(p) : parseYamlDocs(p);
  }).filter((d) => !deleted.includes(`${d.kind}/${d.metadata.name}`));
}

export function kubectlAvailable(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

export function kubectlKustomize(dir: string): K8sDoc[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sDoc);
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  restartPolicy?: string;
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  securityContext?: { privileged?: boolean; runAsNonRoot?: boolean; runAsUser?: number };
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }>;
}

export interface Probe {
  httpGet?: { path: string; port: string | number };
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{
    name: string;
    emptyDir?: { sizeLimit?: string };
    hostPath?: { path: string; type?: string };
    persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  }>;
  terminationGracePeriodSeconds?: number;
}

export interface Workload extends K8sDoc {
  spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

export function workloads(docs: K8sDoc[]): Workload[] {
  return docs.filter((d): d is Workload => d.kind === 'Deployment' || d.kind === 'DaemonSet');
}

export function allContainers(pod: PodSpec): Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

/** `workspace-sync/fuse-mount:0.1.0` → `fuse-mount`. */
export function imageName(image: string): string {
  return image.replace(/:[^/]*$/, '').split('/').at(-1)!;
}

/** Kubernetes quantities (`2Gi`, `512Mi`, `1G`) in bytes. */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGTE]i?)?$/.exec(q);
  if (!m) throw new Error(`not a quantity: ${q}`);
  const unit = m[2] ?? '';
  const base = unit.endsWith('i') ? 1024 : 1000;
  const power = unit ? 'KMGTE'.indexOf(unit[0]!) + 1 : 0;
  return Number(m[1]) * base ** power;
}

/** Variables a shell script reads as `${NAME...}` or `$NAME`. */
export function shellVariables(script: string): Set<string> {
  return new Set([...script.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!));
}

/** Variables the example monitor reads: run-workspace.sh, and watch-workspace.mjs it hands over to (WATCH=1). */
export function monitorVariables(dockerDir: string): Set<string> {
  const script = readFileSync(path.join(dockerDir, 'monitor/run-workspace.sh'), 'utf8');
  const watcher = readFileSync(path.join(dockerDir, 'monitor/watch-workspace.mjs'), 'utf8');
  return new Set([...shellVariables(script), ...[...watcher.matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!)]);
}
