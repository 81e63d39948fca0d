/**
 * The Kubernetes manifests as kubectl renders them (`kubectl kustomize`, kustomize v5: what
 * `kubectl apply -k` runs on the clusters the README targets), validated against the API schemas of
 * the Kubernetes versions the README claims (1.29 or later): Kubernetes 1.33's OpenAPI schema
 * (kubernetes-models, with enums, formats and required fields) and 1.29's types (kubernetes-types,
 * type-checked strictly, so an unknown or misspelt field fails as the API server's strict field
 * validation would). Then the mount propagation of the DaemonSet and of the sidecar, in the output.
 *
 * Debian 12's kubectl 1.20 embeds kustomize v2.0.3, which rejects `labels` and directory `resources`
 * (`json: unknown field "labels"`); writing the manifests for it would need fields kustomize v5
 * deprecates, so the test requires a kubectl with kustomize v5 and says which one it used.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { REPO } from './stack.js';

const OVERLAYS = ['base', 'sidecar', 'daemonset', 'monitoring', 'csi'];

interface Doc { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown }
interface VolumeMount { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }
interface Container { name: string; image: string; args?: string[]; restartPolicy?: string; env?: Array<{ name: string; value?: string }>;
  securityContext?: { privileged?: boolean }; volumeMounts?: VolumeMount[] }
interface Workload extends Doc { spec: { template: { spec: { containers: Container[]; initContainers?: Container[];
  volumes: Array<{ name: string; emptyDir?: object; hostPath?: { path: string } }> } } } }

const kubectl = process.env.KUBECTL ?? 'kubectl';
const version = spawnSync(kubectl, ['version', '--client'], { encoding: 'utf8' });

function render(overlay: string): Doc[] {
  const r = spawnSync(kubectl, ['kustomize', path.join(REPO, 'docker/k8s', overlay)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize docker/k8s/${overlay} failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc);
}

/** The kubernetes-models class of a built-in kind (core group `v1` or `<group>/v1`). */
async function modelOf(doc: Doc): Promise<(new (data: object) => { validate(): void }) | undefined> {
  const group = doc.apiVersion.includes('/') ? doc.apiVersion : `v1`;
  if (!/^(v1|apps\/v1)$/.test(group)) return undefined;
  const mod = (await import(/* @vite-ignore */ `kubernetes-models/${group}/${doc.kind}`)) as Record<string, new (data: object) => { validate(): void }>;
  return mod[doc.kind];
}

const TYPE_MODULE: Record<string, string> = { v1: 'kubernetes-types/core/v1', 'apps/v1': 'kubernetes-types/apps/v1' };

describe('Kubernetes manifests, rendered and validated', () => {
  it(`are rendered by a kubectl with kustomize v5 (${kubectl})`, () => {
    expect(version.error, `${kubectl} not found`).toBeUndefined();
    console.log(version.stdout.trim());
    expect(version.stdout).toMatch(/Kustomize Version: v5\./);
  });

  const rendered = new Map<string, Doc[]>();
  const docs = (overlay: string) => {
    if (!rendered.has(overlay)) rendered.set(overlay, render(overlay));
    return rendered.get(overlay)!;
  };

  it('every kustomization renders, every object namespaced and labelled as part of workspace-sync', () => {
    for (const o of OVERLAYS) {
      const list = docs(o);
      expect(list.length, o).toBeGreaterThan(0);
      for (const d of list) {
        if (!['Namespace', 'PersistentVolume'].includes(d.kind)) expect(d.metadata.namespace, `${o}: ${d.kind}/${d.metadata.name}`).toBe('workspace-sync');
        expect((d.metadata as { labels?: Record<string, string> }).labels?.['app.kubernetes.io/part-of']).toBe('workspace-sync');
      }
    }
  });

  it('every built-in object is valid against the Kubernetes 1.33 OpenAPI schema; only the Prometheus Operator CRs have none', async () => {
    const noSchema = new Set<string>();
    for (const o of OVERLAYS) {
      for (const d of docs(o)) {
        const Model = await modelOf(d);
        if (!Model) {
          noSchema.add(`${d.apiVersion}/${d.kind}`);
          continue;
        }
        expect(() => new Model(d).validate(), `${o}: ${d.kind}/${d.metadata.name}`).not.toThrow();
      }
    }
    expect([...noSchema].sort()).toEqual(['monitoring.coreos.com/v1/PodMonitor', 'monitoring.coreos.com/v1/ServiceMonitor']);
  });

  it('the validator rejects what the API server would (a wrong propagation mode, a missing selector)', async () => {
    const ds = structuredClone(docs('daemonset').find((d) => d.kind === 'DaemonSet')!) as Workload;
    const Model = (await modelOf(ds))!;
    ds.spec.template.spec.containers[0]!.volumeMounts![0]!.mountPropagation = 'Shared';
    expect(() => new Model(ds).validate()).toThrow(/mountPropagation/);
    const dep = structuredClone(docs('sidecar').find((d) => d.kind === 'Deployment')!) as Doc & { spec: { selector?: unknown } };
    delete dep.spec.selector;
    const DeploymentModel = (await modelOf(dep))!;
    expect(() => new DeploymentModel(dep).validate()).toThrow(/selector/);
  });

  it('every built-in object type-checks strictly against the Kubernetes 1.29 API types (unknown fields fail)', () => {
    const dir = path.join(REPO, '.tmp/k8s-types');
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    const imports = new Map<string, Set<string>>();
    let n = 0;
    const add = (d: Doc) => {
      const mod = TYPE_MODULE[d.apiVersion];
      if (!mod) return;
      if (!imports.has(mod)) imports.set(mod, new Set());
      imports.get(mod)!.add(d.kind);
      lines.push(`// ${d.kind}/${d.metadata.name}\nexport const o${n++}: ${mod === TYPE_MODULE.v1 ? 'core' : 'apps'}.${d.kind} = ${JSON.stringify(d, null, 2)};`);
    };
    for (const o of OVERLAYS) docs(o).forEach(add);
    // A field the 1.29 API does not have, so the check is seen to bite.
    const header = [...imports].map(([mod, kinds]) => `import type * as ${mod === TYPE_MODULE.v1 ? 'core' : 'apps'} from '${mod}'; // ${[...kinds].join(', ')}`);
    const canary = `// @ts-expect-error unknown field\nexport const canary: core.Container = { name: 'c', image: 'i', mountPropagation: 'x' };`;
    writeFileSync(path.join(dir, 'rendered.ts'), [...header, ...lines, canary].join('\n') + '\n');
    const tsc = spawnSync(path.join(REPO, 'node_modules/.bin/tsc'), [
      '--noEmit', '--strict', '--module', 'esnext', '--moduleResolution', 'bundler', '--target', 'es2022', path.join(dir, 'rendered.ts'),
    ], { encoding: 'utf8', cwd: REPO });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
    expect(n).toBeGreaterThan(8);
  });

  const mountOf = (w: Workload) => [...(w.spec.template.spec.initContainers ?? []), ...w.spec.template.spec.containers]
    .find((c) => c.image.includes('/fuse-mount:'))!;
  const app = (w: Workload) => w.spec.template.spec.containers.find((c) => c.image.includes('/monitor-example:'))!;
  const sourceDir = (c: Container) => c.env!.find((e) => e.name === 'SOURCE_DIR')!.value!;

  /**
   * The FUSE mount is one level inside a Bidirectional volume, and the consumer reads it there through
   * HostToContainer: the same volume of the same pod, or the same host path from another pod.
   */
  function checkPropagation(mountPod: Workload, consumerPod: Workload) {
    const mount = mountOf(mountPod);
    const consumer = app(consumerPod);
    const mountpoint = mount.args![0]!;
    const shared = mount.volumeMounts!.find((m) => m.mountPath === path.posix.dirname(mountpoint))!;
    expect(shared.mountPropagation).toBe('Bidirectional');
    expect(mount.securityContext?.privileged).toBe(true);
    const volume = mountPod.spec.template.spec.volumes.find((v) => v.name === shared.name)!;
    const same = consumerPod.spec.template.spec.volumes.find((v) =>
      (consumerPod === mountPod ? v.name === volume.name : v.hostPath !== undefined && v.hostPath.path === volume.hostPath?.path))!;
    expect(same, 'the consumer mounts the same volume').toBeDefined();
    const seen = consumer.volumeMounts!.find((m) => m.name === same.name)!;
    expect(seen).toMatchObject({ readOnly: true, mountPropagation: 'HostToContainer' });
    expect(sourceDir(consumer)).toBe(path.posix.join(seen.mountPath, path.posix.basename(mountpoint)));
    return volume;
  }

  it('DaemonSet: the node mount propagates Bidirectional to the host path, consumers read it with HostToContainer', () => {
    const list = docs('daemonset');
    const ds = list.find((d) => d.kind === 'DaemonSet') as Workload;
    const consumer = list.find((d) => d.kind === 'Deployment' && d.metadata.name === 'workspace-consumer') as Workload;
    expect(checkPropagation(ds, consumer).hostPath?.path).toBe('/var/lib/workspace-sync/mnt');
  });

  it('sidecar: a native sidecar mounts into the shared emptyDir Bidirectional, the app reads it with HostToContainer', () => {
    const dep = docs('sidecar').find((d) => d.kind === 'Deployment') as Workload;
    const mount = mountOf(dep);
    expect(dep.spec.template.spec.initContainers).toContainEqual(mount);
    expect(mount.restartPolicy).toBe('Always');
    expect(checkPropagation(dep, dep).emptyDir).toBeDefined();
  });
});
