import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../packages/shared/src/config.js';
import { parseSize } from '../../packages/shared/src/units.js';
import {
  AWS_CREDENTIALS, DOCKER, K8S, OVERLAYS, REPO, allContainers, envNames, flagNames, flagsIn, imageName,
  kubectlAvailable, kubectlKustomize, kustomizationDocs, loadCompose, loadKustomization, monitorVariables, quantityBytes, read, workloads,
  type Container, type K8sDoc, type PodSpec, type Workload,
} from './helpers.js';

const dir = (overlay: string) => path.join(K8S, overlay);
const docs = (overlay: string) => kustomizationDocs(dir(overlay));
const find = <T extends K8sDoc = K8sDoc>(list: K8sDoc[], kind: string, name: string): T => {
  const d = list.find((x) => x.kind === kind && x.metadata.name === name);
  if (!d) throw new Error(`no ${kind}/${name}`);
  return d as T;
};

const baseDocs = docs('base');
const config = find<K8sDoc & { data: Record<string, string> }>(baseDocs, 'ConfigMap', 'workspace-sync-config');
const secret = find<K8sDoc & { stringData: Record<string, string> }>(baseDocs, 'Secret', 's3-credentials');
const pkgVersion = (JSON.parse(read(path.join(REPO, 'packages/fuse-mount/package.json'))) as { version: string }).version;
const scriptVars = monitorVariables(DOCKER);

/** The environment a container gets: envFrom the base ConfigMap/Secret, then `env`. */
function containerEnv(c: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) { expect(from.configMapRef.name).toBe(config.metadata.name); Object.assign(out, config.data); }
    if (from.secretRef) { expect(from.secretRef.name).toBe(secret.metadata.name); Object.assign(out, secret.stringData); }
  }
  for (const e of c.env ?? []) out[e.name] = e.value!;
  return out;
}

function mountContainer(pod: PodSpec): Container {
  const c = allContainers(pod).find((x) => imageName(x.image) === 'fuse-mount');
  if (!c) throw new Error('no fuse-mount container');
  return c;
}

/** What every fuse-mount container must satisfy, wherever it runs. */
function checkMountContainer(pod: PodSpec) {
  const c = mountContainer(pod);
  const env = containerEnv(c);
  const mountpoint = c.args![0]!;
  // The FUSE mount goes one level inside the propagated volume: fuse-native refuses a mount point.
  const propagated = c.volumeMounts!.find((m) => m.mountPath === path.posix.dirname(mountpoint))!;
  expect(propagated, `a volume mounted at the parent of ${mountpoint}`).toBeDefined();
  expect(c.volumeMounts!.some((m) => m.mountPath === mountpoint)).toBe(false);
  expect(propagated.mountPropagation).toBe('Bidirectional');
  expect(c.securityContext?.privileged).toBe(true);

  const allowed = envNames('mount');
  for (const key of Object.keys(env)) expect(allowed.has(key) || AWS_CREDENTIALS.includes(key), key).toBe(true);
  for (const f of flagsIn([...(c.args ?? []), ...(c.command ?? [])])) expect(flagNames('mount').has(f), f).toBe(true);
  expect(Object.keys(secret.stringData).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);

  const cfg = resolveConfig('mount', { env, cwd: K8S });
  expect(cfg.bucket).toBe(config.data.S3_BUCKET);
  expect(cfg.allowOther).toBe(true);
  // The kubelet's probes and Prometheus come from outside the pod: the CLI's loopback default would refuse them.
  expect(cfg.healthAddress).toBe('0.0.0.0');
  const cache = c.volumeMounts!.find((m) => m.mountPath === cfg.cacheDir);
  expect(cache, 'the cache directory is a volume').toBeDefined();
  const cacheVolume = pod.volumes!.find((v) => v.name === cache!.name)!;
  if (cacheVolume.emptyDir) expect(quantityBytes(cacheVolume.emptyDir.sizeLimit!)).toBeGreaterThanOrEqual(cfg.cacheMaxSize);

  const metrics = c.ports!.find((p) => p.name === 'metrics')!;
  expect(metrics.containerPort).toBe(cfg.healthPort);
  for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
    expect(probe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
  }
  for (const kind of ['requests', 'limits'] as const) {
    expect(Object.keys(c.resources![kind]!).sort()).toEqual(['cpu', 'memory']);
  }
  expect(quantityBytes(c.resources!.limits!.memory!)).toBeGreaterThan(cfg.memCacheSize);
  return { container: c, mountpoint, volumeMount: propagated, volume: pod.volumes!.find((v) => v.name === propagated.name)! };
}

/**
 * What every example consumer (the monitor image) must satisfy. `subdir`: where the workspaces are
 * inside the volume (the FUSE mount's directory; none for a volume that is the bucket itself).
 */
function checkConsumer(pod: PodSpec, volumeName: string, subdir?: string) {
  const app = pod.containers.find((c) => imageName(c.image) === 'monitor-example')!;
  const ws = app.volumeMounts!.find((m) => m.name === volumeName)!;
  expect(ws.readOnly).toBe(true);
  const env = containerEnv(app);
  expect(env.SOURCE_DIR).toBe(subdir ? path.posix.join(ws.mountPath, subdir) : ws.mountPath);
  for (const key of Object.keys(env)) expect(scriptVars.has(key) || key === 'PORT', key).toBe(true);
  expect(app.args).toEqual(['demo', 'npm', 'start']);
  expect(app.ports!.find((p) => p.name === 'http')!.containerPort).toBe(Number(env.PORT));
  expect(app.readinessProbe!.httpGet!.port).toBe('http');
  expect(app.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
  expect(Object.keys(app.resources!.limits!).sort()).toEqual(['cpu', 'memory']);
  const scratch = app.volumeMounts!.find((m) => m.mountPath === env.SCRATCH_DIR);
  expect(scratch, 'the scratch directory is a volume').toBeDefined();
  return ws;
}

describe('docker/k8s kustomize tree', () => {
  it('every YAML file belongs to exactly one kustomization, and every resource exists', () => {
    const listed = OVERLAYS.flatMap((o) => loadKustomization(dir(o)).resources
      .map((r) => path.resolve(dir(o), r)).filter((p) => p.endsWith('.yaml')));
    const onDisk = OVERLAYS.flatMap((o) => readdirSync(dir(o)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
      .map((f) => path.join(dir(o), f)));
    expect(listed.sort()).toEqual(onDisk.sort());
    expect(readdirSync(K8S).sort()).toEqual([...OVERLAYS].sort());
  });

  it('every document is a named Kubernetes object in the workspace-sync namespace', () => {
    for (const o of OVERLAYS) {
      expect(loadKustomization(dir(o)).namespace, o).toBe('workspace-sync');
      for (const d of docs(o)) {
        expect(d.apiVersion && d.kind && d.metadata.name, `${o}: ${JSON.stringify(d).slice(0, 80)}`).toBeTruthy();
        expect(d.metadata.namespace, `${o}: ${d.kind}/${d.metadata.name} leaves the namespace to kustomize`).toBeUndefined();
      }
    }
  });

  it.skipIf(!kubectlAvailable())('kubectl kustomize builds every directory into the same objects, namespaced', () => {
    for (const o of OVERLAYS) {
      const built = kubectlKustomize(dir(o));
      const key = (d: K8sDoc) => `${d.kind}/${d.metadata.name}`;
      expect(built.map(key).sort(), o).toEqual(docs(o).map(key).sort());
      for (const d of built) {
        if (!['Namespace', 'PersistentVolume'].includes(d.kind)) expect(d.metadata.namespace, key(d)).toBe('workspace-sync');
        expect(d.metadata.labels?.['app.kubernetes.io/part-of']).toBe('workspace-sync');
      }
    }
  });

  it('the credentials Secret holds placeholders only, and the ConfigMap only mount variables', () => {
    for (const v of Object.values(secret.stringData)) expect(v).toMatch(/^REPLACE_WITH_/);
    const allowed = envNames('mount');
    for (const key of Object.keys(config.data)) expect(allowed.has(key), key).toBe(true);
  });

  it('runs images built from docker/Dockerfile at the package version, overridable in each kustomization', () => {
    const compose = loadCompose();
    const built = new Set(Object.values(compose.services).map((s) => s.image).filter((i) => i?.startsWith('workspace-sync/'))
      .map((i) => i!.split(':')[0]));
    for (const o of OVERLAYS) {
      const k = loadKustomization(dir(o));
      for (const w of workloads(docs(o))) {
        for (const c of allContainers(w.spec.template.spec)) {
          expect(built.has(c.image.split(':')[0]), c.image).toBe(true);
          expect(c.image.split(':')[1]).toBe(pkgVersion);
          expect(k.images?.map((i) => i.name), `${o} lists ${c.image} under images:`).toContain(c.image.split(':')[0]);
        }
      }
      for (const i of k.images ?? []) expect(i.newTag).toBe(pkgVersion);
    }
  });

  it('the namespaces of base and csi are identical, allowing the privileged mounts', () => {
    const ns = find(baseDocs, 'Namespace', 'workspace-sync');
    expect(find(docs('csi'), 'Namespace', 'workspace-sync')).toEqual(ns);
    expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
  });

  describe('sidecar', () => {
    const deployment = find<Workload>(docs('sidecar'), 'Deployment', 'workspace-app');
    const pod = deployment.spec.template.spec;

    it('runs the mount as a native sidecar that starts before and stops after the app', () => {
      const c = mountContainer(pod);
      expect(pod.initContainers).toContain(c);
      expect(c.restartPolicy).toBe('Always');
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
    });

    it('mounts inside an emptyDir with Bidirectional propagation, seen by the app read-only with HostToContainer', () => {
      const { volume, volumeMount, mountpoint } = checkMountContainer(pod);
      expect(volume.emptyDir).toBeDefined();
      const ws = checkConsumer(pod, volume.name, path.posix.relative(volumeMount.mountPath, mountpoint));
      expect(ws.mountPropagation).toBe('HostToContainer');
    });
  });

  describe('daemonset', () => {
    const list = docs('daemonset');
    const ds = find<Workload>(list, 'DaemonSet', 'workspace-sync-mount');
    const consumer = find<Workload>(list, 'Deployment', 'workspace-consumer');

    it('exposes the mount on each node at a host path with Bidirectional propagation, cache on the host too', () => {
      const { volume, container } = checkMountContainer(ds.spec.template.spec);
      expect(volume.hostPath).toEqual({ path: '/var/lib/workspace-sync/mnt', type: 'DirectoryOrCreate' });
      const cacheMount = container.volumeMounts!.find((m) => m.mountPath === containerEnv(container).CACHE_DIR)!;
      expect(ds.spec.template.spec.volumes!.find((v) => v.name === cacheMount.name)!.hostPath?.path).toBe('/var/cache/workspace-sync');
    });

    it('lets many pods read the node mount through the same host path with HostToContainer', () => {
      const { volume: mountVolume, volumeMount, mountpoint } = checkMountContainer(ds.spec.template.spec);
      const pod = consumer.spec.template.spec;
      const shared = pod.volumes!.find((v) => v.hostPath?.path === mountVolume.hostPath!.path)!;
      const ws = checkConsumer(pod, shared.name, path.posix.relative(volumeMount.mountPath, mountpoint));
      expect(ws.mountPropagation).toBe('HostToContainer');
      expect((consumer.spec as { replicas?: number }).replicas).toBeGreaterThan(1);
    });

    it('reads the keys from a Secret mounted as a file, not from environment variables', () => {
      const pod = ds.spec.template.spec;
      const c = mountContainer(pod);
      expect(c.envFrom?.some((f) => f.secretRef)).toBe(false);
      const file = containerEnv(c).AWS_SHARED_CREDENTIALS_FILE!;
      const mount = c.volumeMounts!.find((m) => file.startsWith(`${m.mountPath}/`))!;
      expect(mount.readOnly).toBe(true);
      const volume = pod.volumes!.find((v) => v.name === mount.name) as { secret?: { secretName: string; defaultMode?: number } };
      expect(volume.secret?.defaultMode).toBe(0o400);
      const fileSecret = find<K8sDoc & { stringData: Record<string, string> }>(baseDocs, 'Secret', volume.secret!.secretName);
      expect(Object.keys(fileSecret.stringData)).toEqual([path.basename(file)]);
      expect(fileSecret.stringData[path.basename(file)]).toMatch(/^\[default\]\naws_access_key_id = REPLACE_WITH_\w+\naws_secret_access_key = REPLACE_WITH_\w+\n$/);
    });

    it('has a metrics Service selecting the DaemonSet pods by the port named metrics', () => {
      const service = find<K8sDoc & { spec: { selector: Record<string, string>; ports: Array<{ name: string; targetPort: string }> } }>(
        list, 'Service', 'workspace-sync-mount');
      expect(ds.spec.template.metadata.labels).toMatchObject(service.spec.selector);
      expect(service.spec.ports).toEqual([expect.objectContaining({ name: 'metrics', targetPort: 'metrics' })]);
    });
  });

  describe('irsa (Amazon EKS, no stored keys)', () => {
    it('binds the sidecar example to a ServiceAccount annotated with an IAM role', () => {
      const sa = find<K8sDoc & { metadata: { annotations?: Record<string, string> } }>(docs('irsa'), 'ServiceAccount', 'workspace-sync-mount');
      expect(sa.metadata.annotations?.['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::\d{12}:role\/[\w+=,.@-]+$/);
      expect(docs('irsa').filter((d) => d.kind === 'Secret')).toEqual([]);
    });

    it.skipIf(!kubectlAvailable())('kubectl kustomize gives the pod that ServiceAccount and its mount no Secret', () => {
      const built = kubectlKustomize(dir('irsa'));
      expect(built.filter((d) => d.kind === 'Secret')).toEqual([]);
      const deployment = find<Workload>(built, 'Deployment', 'workspace-app');
      const pod = deployment.spec.template.spec as PodSpec & { serviceAccountName?: string };
      expect(pod.serviceAccountName).toBe('workspace-sync-mount');
      const c = mountContainer(pod);
      expect(c.envFrom).toEqual([{ configMapRef: { name: config.metadata.name } }]);
      checkMountContainer(pod);
    });
  });

  describe('monitoring', () => {
    const list = docs('monitoring');

    it('the ServiceMonitor scrapes /metrics of the DaemonSet Service by port name', () => {
      const sm = find<K8sDoc & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> } }>(
        list, 'ServiceMonitor', 'workspace-sync-mount');
      const service = find(docs('daemonset'), 'Service', 'workspace-sync-mount');
      expect(service.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
      expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
    });

    it('the PodMonitor scrapes the sidecar mounts of workspace-app pods', () => {
      const pm = find<K8sDoc & { spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: Array<{ port: string; path: string }> } }>(
        list, 'PodMonitor', 'workspace-app-mount');
      const deployment = find<Workload>(docs('sidecar'), 'Deployment', 'workspace-app');
      expect(deployment.spec.template.metadata.labels).toMatchObject(pm.spec.selector.matchLabels);
      expect(pm.spec.podMetricsEndpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
      expect(mountContainer(deployment.spec.template.spec).ports!.map((p) => p.name)).toContain('metrics');
    });
  });

  describe('csi (Mountpoint for Amazon S3)', () => {
    const list = docs('csi');
    type PV = K8sDoc & { spec: {
      accessModes: string[]; storageClassName: string; mountOptions: string[];
      claimRef: { namespace: string; name: string };
      csi: { driver: string; volumeHandle: string; volumeAttributes: { bucketName: string } };
      capacity: { storage: string };
    } };
    type PVC = K8sDoc & { spec: { accessModes: string[]; storageClassName: string; volumeName: string; resources: { requests: { storage: string } } } };
    const pv = list.find((d): d is PV => d.kind === 'PersistentVolume')!;
    const pvc = list.find((d): d is PVC => d.kind === 'PersistentVolumeClaim')!;

    it('statically provisions a read-only volume of the same bucket and region', () => {
      expect(pv.spec.csi.driver).toBe('s3.csi.aws.com');
      expect(pv.spec.csi.volumeAttributes.bucketName).toBe(config.data.S3_BUCKET);
      expect(pv.spec.mountOptions).toEqual(expect.arrayContaining(['read-only', 'allow-other', `region ${config.data.AWS_REGION}`]));
      expect(pv.spec.accessModes).toEqual(['ReadOnlyMany']);
      expect(pv.spec.storageClassName).toBe('');
    });

    it('binds the PV and the PVC to each other only', () => {
      expect(pv.spec.claimRef).toEqual({ namespace: loadKustomization(dir('csi')).namespace, name: pvc.metadata.name });
      expect(pvc.spec.volumeName).toBe(pv.metadata.name);
      expect(pvc.spec.accessModes).toEqual(pv.spec.accessModes);
      expect(pvc.spec.storageClassName).toBe('');
      expect(quantityBytes(pvc.spec.resources.requests.storage)).toBeLessThanOrEqual(quantityBytes(pv.spec.capacity.storage));
    });

    it('runs the same consumer flow from the claim, read-only', () => {
      const consumer = workloads(list)[0]!;
      const pod = consumer.spec.template.spec;
      const claim = pod.volumes!.find((v) => v.persistentVolumeClaim)!;
      expect(claim.persistentVolumeClaim).toEqual({ claimName: pvc.metadata.name, readOnly: true });
      checkConsumer(pod, claim.name);
    });
  });

  it('compares cache budgets in the same units as the CLI: CACHE_MAX_SIZE=1G is 1 GiB', () => {
    expect(parseSize('1G')).toBe(quantityBytes('1Gi'));
  });
});
