// docker-compose.yml, read as YAML (no Docker engine here): Redis with appendonly and a health check,
// the backend and the proxy built from our Dockerfiles, every `service_healthy` dependency on a
// service that has a health check (its own or its image's HEALTHCHECK), config/ mounted read-only
// where the proxy image looks for its policy, and the admin port published on loopback only.
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parsePolicy } from '../../../proxy/config/load.js';
import { PROJECT_ROOT } from '../../helpers/proxy.js';
import { envOf, last, readDockerfile } from './dockerfile.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

/** The final stage of a service's Dockerfile, when it is built here. */
function runtimeStage(s: Service) {
  if (!s.build) return null;
  return readDockerfile(join(PROJECT_ROOT, s.build.context, s.build.dockerfile)).at(-1)!;
}

describe('docker-compose.yml', () => {
  it('has redis, backend and proxy', () => {
    expect(Object.keys(services).sort()).toEqual(['backend', 'proxy', 'redis']);
  });

  it('runs Redis with appendonly and a health check, on a named volume', () => {
    const redis = services.redis!;
    expect(redis.image).toMatch(/^redis:7/);
    expect(redis.command?.join(' ')).toContain('--appendonly yes');
    expect(redis.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    const volume = redis.volumes?.[0]?.split(':')[0];
    expect(compose.volumes).toHaveProperty(volume!);
  });

  it('builds the backend and the proxy from Dockerfiles that exist', () => {
    for (const name of ['backend', 'proxy']) {
      const b = services[name]!.build!;
      expect(existsSync(join(PROJECT_ROOT, b.context, b.dockerfile)), b.dockerfile).toBe(true);
    }
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose's own ${VAR:-default}, not a template
    expect(services.backend!.build!.args?.WHISPER_MODEL).toBe('${WHISPER_MODEL:-base.en}');
  });

  it('starts each service after its dependencies are healthy, and each of those has a health check', () => {
    expect(services.backend!.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
    expect(services.proxy!.depends_on).toEqual({
      redis: { condition: 'service_healthy' },
      backend: { condition: 'service_healthy' },
    });
    for (const s of Object.values(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(condition).toBe('service_healthy');
        const target = services[dep]!;
        const fromImage = runtimeStage(target) && last(runtimeStage(target)!, 'HEALTHCHECK');
        expect(Boolean(target.healthcheck || fromImage), `${dep} has a health check`).toBe(true);
      }
    }
  });

  it('points both services at Redis and the proxy at the backend by service name', () => {
    expect(services.backend!.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(services.proxy!.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(services.proxy!.environment?.BACKEND_URL).toBe('http://backend:8000');
    expect(envOf(runtimeStage(services.backend!)!).PORT).toBe('8000');
  });

  it('mounts config/ read-only where the proxy image reads its policy, and that policy is valid here', () => {
    const proxy = services.proxy!;
    const mount = proxy.volumes?.find((v) => v.startsWith('./config:'));
    expect(mount).toBeDefined();
    const [, target, mode] = mount!.split(':');
    expect(mode).toBe('ro');
    const configFile = envOf(runtimeStage(proxy)!).FLOODGATE_CONFIG!;
    expect(configFile.startsWith(target + '/')).toBe(true);
    const rel = posix.join('config', configFile.slice(target!.length + 1));
    const env = { ...proxy.environment, ADMIN_TOKEN: '' };
    const r = parsePolicy(readFileSync(join(PROJECT_ROOT, rel), 'utf8'), rel, env);
    expect(r.ok ? [] : r.errors).toEqual([]);
    if (!r.ok) return;
    expect(r.policy.store).toMatchObject({ type: 'redis', url: 'redis://redis:6379' });
    expect(r.policy.upstreams.transcriber?.url).toBe('http://backend:8000');
    // The published ports are the policy's: data plane on all interfaces, admin on loopback only.
    expect(proxy.ports).toEqual([
      `${r.policy.listen.port}:${r.policy.listen.port}`,
      `127.0.0.1:${r.policy.admin.listen.port}:${r.policy.admin.listen.port}`,
    ]);
  });
});
