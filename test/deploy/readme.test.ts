import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  AWS_CREDENTIALS, COMPOSE_FILE, DOCKER, ENV_EXAMPLE, K8S, OVERLAYS, REPO, envNames, interpolationNames, isDir,
  kustomizationDocs, loadCompose, loadDockerfile, monitorVariables, parseEnvFile, read, serviceEnv, workloads,
} from './helpers.js';

// The Docker and Kubernetes sections of the main README (they end where the next top-level section starts).
const fullReadme = read(path.join(REPO, 'README.md'));
const sectionStart = fullReadme.indexOf('## Run with Docker');
const sectionEnd = fullReadme.indexOf('\n## ', fullReadme.indexOf('## Kubernetes'));
const readme = fullReadme.slice(sectionStart, sectionEnd === -1 ? undefined : sectionEnd);
const codeBlocks = [...readme.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, body: m[2]! }));
const shellLines = codeBlocks.filter((b) => b.lang === 'sh').flatMap((b) => b.body.replace(/\\\n\s*/g, ' ').split('\n'))
  .map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
const ticked = new Set([...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!));
const compose = loadCompose();
const envExample = parseEnvFile(read(ENV_EXAMPLE));
const allK8s = OVERLAYS.flatMap((o) => kustomizationDocs(path.join(K8S, o)));

describe('README.md (Docker and Kubernetes sections)', () => {
  it('has the "Run with Docker" and "Kubernetes" sections', () => {
    expect(sectionStart).toBeGreaterThan(0);
    expect(readme.match(/^## .*$/gm)).toEqual(['## Run with Docker', '## Kubernetes']);
  });

  it('names only files and directories that exist', () => {
    const paths = [...readme.matchAll(/\bdocker\/[\w./-]*[\w/]/g)].map((m) => m[0]);
    expect(paths.length).toBeGreaterThan(15);
    // Files a Compose user creates locally; git keeps them out.
    const runtime = read(path.join(DOCKER, '.gitignore')).split('\n').filter((l) => l.startsWith('/')).map((l) => `docker${l.replace(/\/$/, '')}`);
    expect(runtime.sort()).toEqual(['docker/.env', 'docker/docker-compose.override.yml', 'docker/mnt']);
    for (const p of paths) expect(existsSync(path.join(REPO, p)) || runtime.some((r) => p === r || p.startsWith(`${r}/`)), p).toBe(true);
  });

  it('describes every compose service and uses only services that exist', () => {
    for (const name of Object.keys(compose.services)) expect(ticked.has(name), name).toBe(true);
    const composeCommands = shellLines.filter((l) => l.startsWith('docker compose '));
    expect(composeCommands.length).toBeGreaterThan(5);
    for (const line of composeCommands) {
      const m = /^docker compose (?:logs|exec|run --rm) (\S+)/.exec(line);
      if (m) expect(compose.services, line).toHaveProperty(m[1]!);
    }
  });

  it('names only variables that the CLIs, docker-compose.yml or the scripts read', () => {
    const known = new Set([
      ...envNames(), ...AWS_CREDENTIALS, ...Object.keys(envExample), ...interpolationNames(read(COMPOSE_FILE)),
      ...monitorVariables(DOCKER),
      ...Object.values(compose.services).flatMap((s) => s.cap_add ?? []),
    ]);
    const vars = [...ticked].filter((t) => /^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/.test(t));
    expect(vars.length).toBeGreaterThan(15);
    for (const v of vars) expect(known.has(v), v).toBe(true);
  });

  it('gives the host-side defaults docker-compose.yml and .env.example use', () => {
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)`(?: \/ `([A-Z_]+)`)? \| `([^`]+)`(?: \/ `([^`]+)`)? \|/gm)];
    expect(rows.length).toBe(5);
    const composeText = read(COMPOSE_FILE);
    for (const r of rows) {
      for (const [name, value] of [[r[1], r[3]], [r[2], r[4]]] as const) {
        if (!name) continue;
        expect(envExample[name], name).toBe(value);
        expect(composeText, name).toContain(`\${${name}:-${value}}`);
      }
    }
  });

  it('quotes the ports, paths and grace period of the compose file', () => {
    const agentEnv = serviceEnv(compose.services['sync-agent']!);
    expect(readme).toContain(`\`HEALTH_PORT\` (${agentEnv.HEALTH_PORT})`);
    expect(readme).toContain(`stop_grace_period (${compose.services['fuse-mount']!.stop_grace_period})`);
    expect(readme).toContain(`\`fuse-mount ${compose.services['fuse-mount']!.command![0]}\``);
    expect(compose.services.minio!.ports!.map((p) => p.split(':').at(-1))).toEqual(['9000', '9001']);
    expect(readme).toContain('http://localhost:9001');
    expect(readme).toContain(`http://localhost:${envExample.MONITOR_PORT}`);
  });

  it('builds images with targets and names that the Dockerfile, compose and Kubernetes use', () => {
    const stages = loadDockerfile().stages.map((s) => s.name);
    const images = new Set([
      ...Object.values(compose.services).map((s) => s.image?.split(':')[0]),
      ...workloads(allK8s).flatMap((w) => [...(w.spec.template.spec.initContainers ?? []), ...w.spec.template.spec.containers])
        .map((c) => c.image.split(':')[0]),
    ]);
    const builds = shellLines.filter((l) => l.startsWith('docker build '));
    expect(builds.length).toBe(5);
    for (const line of builds) {
      const m = /^docker build -f docker\/Dockerfile --target (\S+) -t (?:registry\.example\.com\/)?(\S+):0\.1\.0 \.$/.exec(line);
      expect(m, line).not.toBeNull();
      expect(stages).toContain(m![1]);
      expect(images.has(m![2]), m![2]).toBe(true);
    }
  });

  it('applies every kustomize directory and lists each in its table', () => {
    const applied = shellLines.filter((l) => l.startsWith('kubectl apply -k ')).map((l) => l.split(' ').at(-1)!);
    expect(applied.sort()).toEqual(OVERLAYS.filter((o) => o !== 'base').map((o) => `docker/k8s/${o}`).sort());
    for (const o of OVERLAYS) {
      expect(isDir(path.join(K8S, o))).toBe(true);
      expect(readme).toContain(`| \`docker/k8s/${o}\` |`);
    }
  });

  it('quotes the port, cache sizes, host paths and replicas of the Kubernetes manifests', () => {
    const find = (kind: string, name: string) => workloads(allK8s).find((w) => w.kind === kind && w.metadata.name === name)!;
    const sidecar = find('Deployment', 'workspace-app').spec.template.spec;
    const mount = sidecar.initContainers!.find((c) => c.name === 'fuse-mount')!;
    const env = Object.fromEntries(mount.env!.map((e) => [e.name, e.value]));
    const cacheVolume = sidecar.volumes!.find((v) => v.name === mount.volumeMounts!.find((m) => m.mountPath === env.CACHE_DIR)!.name)!;
    expect(readme).toContain(`named \`metrics\` (${env.HEALTH_PORT}, from`);
    expect(readme).toContain(`(\`CACHE_MAX_SIZE=${env.CACHE_MAX_SIZE}\`) lives in an emptyDir limited to ${cacheVolume.emptyDir!.sizeLimit}`);
    const ds = find('DaemonSet', 'workspace-sync-mount').spec.template.spec;
    const prose = readme.replace(/\s+/g, ' ');
    for (const v of ds.volumes!.filter((x) => x.hostPath)) expect(prose, v.name).toContain(`host path \`${v.hostPath!.path}\``);
    const replicas = (find('Deployment', 'workspace-consumer').spec as { replicas?: number }).replicas;
    expect(readme).toContain(`Deployment \`workspace-consumer\` (${replicas} pods`);
  });

  it('names only Kubernetes objects that exist', () => {
    const named = [...readme.matchAll(/\b(Deployment|DaemonSet|ConfigMap|Secret|Service) `([\w-]+)`/g)];
    expect(named.length).toBeGreaterThan(5);
    for (const [, kind, name] of named) {
      expect(allK8s.some((d) => d.kind === kind && d.metadata.name === name), `${kind} ${name}`).toBe(true);
    }
  });

  it('shows a consumer snippet identical to the DaemonSet example consumer', () => {
    const snippet = parse(codeBlocks.find((b) => b.lang === 'yaml' && b.body.includes('hostPath'))!.body) as {
      volumes: unknown[]; containers: Array<{ name: string; volumeMounts: unknown[] }>;
    };
    const consumer = workloads(kustomizationDocs(path.join(K8S, 'daemonset'))).find((w) => w.metadata.name === 'workspace-consumer')!;
    const pod = consumer.spec.template.spec;
    expect(pod.volumes).toContainEqual(snippet.volumes[0]);
    const app = pod.containers.find((c) => c.name === snippet.containers[0]!.name)!;
    expect(app.volumeMounts).toContainEqual(snippet.containers[0]!.volumeMounts[0]);
  });

  it('shows a compose override that changes only the sync-agent command', () => {
    const override = parse(codeBlocks.find((b) => b.lang === 'yaml' && b.body.includes('services:'))!.body) as {
      services: Record<string, { command: string[] }>;
    };
    expect(Object.keys(override.services)).toEqual(['sync-agent']);
    expect(override.services['sync-agent']!.command[0]).toBe(compose.services['sync-agent']!.command![0]);
  });

  it('says what the Mountpoint for S3 CSI route lacks', () => {
    const csi = readme.slice(readme.indexOf('### Mountpoint for Amazon S3 CSI driver'));
    for (const gap of ['No manifest snapshots', 'No exec bit', 'No symlinks']) expect(csi).toContain(`- ${gap}`);
    expect(csi).toContain('`s3.csi.aws.com`');
  });
});
