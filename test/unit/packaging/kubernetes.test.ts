// config/kubernetes/: the manifests parse; the Deployment runs the app and floodgate side by side,
// with floodgate's liveness on /healthz and readiness on /readyz at its admin port; the policy comes
// from the ConfigMap, mounted as a directory (a subPath mount would never see an update) at the path
// floodgate is started with; and the embedded policy passes `floodgate validate`'s checks, listening
// where the probes and the Service look and forwarding to the app over the pod's loopback.
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parsePolicy } from '../../../proxy/config/load.js';
import { PROJECT_ROOT } from '../../helpers/proxy.js';

interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  securityContext?: Record<string, unknown>;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: {
    selector?: unknown;
    ports?: { targetPort: string | number }[];
    template?: {
      spec: { containers: Container[]; volumes: { name: string; configMap?: { name: string } }[] };
    };
  };
}

const dir = join(PROJECT_ROOT, 'config', 'kubernetes');
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
const manifests: Manifest[] = files.flatMap((f) =>
  parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
    expect(d.errors, f).toEqual([]);
    return d.toJS() as Manifest;
  }),
);
const byKind = (kind: string) => manifests.filter((m) => m.kind === kind);

describe('config/kubernetes', () => {
  it('parses into a ConfigMap, a Deployment and a Service', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Service']);
    for (const m of manifests) expect(m.apiVersion && m.metadata.name).toBeTruthy();
  });

  const deployment = byKind('Deployment')[0]!;
  const pod = deployment.spec!.template!.spec;
  const floodgate = pod.containers.find((c) => c.name === 'floodgate')!;
  const app = pod.containers.find((c) => c.name !== 'floodgate')!;
  const portOf = (name: string | number) =>
    typeof name === 'number' ? name : floodgate.ports!.find((p) => p.name === name)!.containerPort;

  it('runs the app and floodgate in one pod, floodgate probed on /healthz and /readyz', () => {
    expect(pod.containers).toHaveLength(2);
    expect(app).toBeDefined();
    expect(floodgate.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(floodgate.readinessProbe?.httpGet.path).toBe('/readyz');
    expect(portOf(floodgate.livenessProbe!.httpGet.port)).toBe(
      portOf(floodgate.readinessProbe!.httpGet.port),
    );
    expect(floodgate.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
  });

  const configFile = floodgate.args![floodgate.args!.indexOf('--config') + 1]!;
  const mount = floodgate.volumeMounts!.find((m) => configFile.startsWith(m.mountPath + '/'))!;
  const volume = pod.volumes.find((v) => v.name === mount?.name);
  const configMap = byKind('ConfigMap').find((c) => c.metadata.name === volume?.configMap?.name);
  const key = posix.basename(configFile);

  it('mounts the ConfigMap as a directory (so updates arrive) where --config points', () => {
    expect(floodgate.args?.[0]).toBe('proxy');
    expect(mount).toBeDefined();
    expect(mount.subPath).toBeUndefined();
    expect(mount.readOnly).toBe(true);
    expect(posix.dirname(configFile)).toBe(mount.mountPath);
    expect(configMap?.data).toHaveProperty(key);
  });

  it('embeds a policy that validates, listening where the probes and the Service look', () => {
    const env: Record<string, string> = { ADMIN_TOKEN: '' };
    for (const e of floodgate.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    const r = parsePolicy(configMap!.data![key]!, `${configMap!.metadata.name}/${key}`, env);
    expect(r.ok ? [] : r.errors).toEqual([]);
    if (!r.ok) return;
    const p = r.policy;
    expect(p.admin.listen).toEqual({ host: '0.0.0.0', port: portOf(floodgate.livenessProbe!.httpGet.port) });
    expect(p.listen.host).toBe('0.0.0.0');
    const service = byKind('Service')[0]!;
    expect(portOf(service.spec!.ports![0]!.targetPort)).toBe(p.listen.port);
    // The app is reached over the pod's loopback, on the port it is told to use.
    const appPort = app.env?.find((e) => e.name === 'PORT')?.value;
    for (const u of Object.values(p.upstreams)) expect(u.url).toBe(`http://127.0.0.1:${appPort}`);
    expect(p.store.type).toBe('redis');
  });
});
