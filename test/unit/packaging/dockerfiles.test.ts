// The Dockerfiles cannot be built here (no Docker engine), so this checks what a build would trip on:
// every COPY source exists in the repository or is made by an earlier stage (npm ci, the TypeScript
// build at tsconfig's outDir, backend/whisper/build.sh's output, the model download's --dir); every
// command the image runs (ENTRYPOINT + CMD, HEALTHCHECK) is a compiled file of ours, a `floodgate`
// subcommand that exists, or a package.json script; the files the code reads from beside its sources
// at run time are in the image; and the conventions: multi-stage, a slim Node runtime, a non-root
// user, a health check on /healthz at the port the service really listens on.
import { type Dirent, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MODEL_SHA1, modelFileName } from '../../../backend/model/catalog.js';
import { parsePolicy } from '../../../proxy/config/load.js';
import { PROJECT_ROOT } from '../../helpers/proxy.js';
import {
  argDefault,
  commandWords,
  copies,
  envOf,
  last,
  readDockerfile,
  type Stage,
  workdirAt,
} from './dockerfile.js';

const root = (...p: string[]) => join(PROJECT_ROOT, ...p);
const pkg = JSON.parse(readFileSync(root('package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  optionalDependencies: Record<string, string>;
};
const tsconfig = JSON.parse(readFileSync(root('tsconfig.json'), 'utf8')) as {
  compilerOptions: { outDir: string; rootDir: string };
  include: string[];
};
const OUT_DIR = tsconfig.compilerOptions.outDir.replace(/^\.\//, '').replace(/\/$/, '');

/** Where backend/whisper/build.sh puts its binary, read from the script itself. */
function whisperOutput(): string {
  const script = readFileSync(root('backend', 'whisper', 'build.sh'), 'utf8');
  const dir = /out_dir="\$\{WHISPER_CPP_DIR:-\$root\/([^}]+)\}"/.exec(script)?.[1];
  const target = /WHISPER_TARGETS:-(\w+)/.exec(script)?.[1];
  expect(dir, 'build.sh default out_dir').toBeDefined();
  expect(script).toContain('$out_dir/bin/$bin');
  return `${dir}/bin/${target}`;
}

/** The subcommands cli/floodgate.ts registers. */
function cliCommands(): Set<string> {
  const text = readFileSync(root('cli', 'floodgate.ts'), 'utf8');
  return new Set([...text.matchAll(/\.command\('([\w-]+)'\)/g)].map((m) => m[1]!));
}

/** True when `ts` matches one of tsconfig's include globs (only the `dir/**\/*.ts` shape is used). */
function compiled(ts: string): boolean {
  return tsconfig.include.some((glob) => {
    const m = /^(.*)\/\*\*\/\*\.ts$/.exec(glob);
    return m ? ts.startsWith(m[1]! + '/') : ts === glob;
  });
}

/** Absolute paths each stage holds (with what it inherits), from COPYs and the RUNs we know. */
function producedPaths(stages: Stage[]): Map<string, Set<string>> {
  const byName = new Map<string, Set<string>>();
  for (const stage of stages) {
    const made = new Set<string>(stage.from && byName.has(stage.from) ? byName.get(stage.from) : []);
    stage.instructions.forEach((ins, i) => {
      const wd = workdirAt(stage, i);
      if (ins.keyword === 'COPY') {
        const c = copies({ ...stage, instructions: [ins] })[0]!;
        const dest = posix.resolve(wd, c.dest);
        for (const src of c.sources) {
          // From a stage, a directory is written with its trailing slash (the Dockerfiles here do).
          const isDirSource =
            c.from === null ? existsSync(root(src)) && statSync(root(src)).isDirectory() : src.endsWith('/');
          made.add(c.dest.endsWith('/') && !isDirSource ? posix.join(dest, basename(src)) : dest);
        }
      }
      if (ins.keyword === 'RUN') {
        if (/\bnpm ci\b/.test(ins.args)) made.add(posix.join(wd, 'node_modules'));
        if (/\bnpm run build\b/.test(ins.args)) made.add(posix.join(wd, OUT_DIR));
        if (ins.args.includes('backend/whisper/build.sh')) made.add(posix.join(wd, whisperOutput()));
        const model = /model download \S+ --dir (\S+)/.exec(ins.args);
        if (model) made.add(posix.resolve(wd, model[1]!));
      }
    });
    if (stage.name) byName.set(stage.name, made);
    byName.set(`#${stages.indexOf(stage)}`, made);
  }
  return byName;
}

const under = (path: string, dir: string) => path === dir || path.startsWith(dir.replace(/\/$/, '') + '/');

/** Where a repo path lands in the final stage, through its context COPYs. */
function landsAt(stage: Stage, repoPath: string): string[] {
  const out: string[] = [];
  stage.instructions.forEach((ins, i) => {
    if (ins.keyword !== 'COPY') return;
    const c = copies({ ...stage, instructions: [ins] })[0]!;
    if (c.from !== null) return;
    const dest = posix.resolve(workdirAt(stage, i), c.dest);
    for (const raw of c.sources) {
      const src = raw.replace(/\/$/, '');
      const isDir = statSync(root(src)).isDirectory();
      if (isDir && under(repoPath, src)) out.push(posix.join(dest, repoPath.slice(src.length)));
      else if (!isDir && repoPath === src)
        out.push(c.dest.endsWith('/') ? posix.join(dest, basename(src)) : dest);
    }
  });
  return out;
}

/** Repo paths the proxy reads at run time through projectPath('a', 'b', ...), up to the first non-literal. */
function filesReadBesideSources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(root(d), { withFileTypes: true }) as Dirent[]) {
      const rel = `${d}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.ts') && rel !== 'core/paths.ts') {
        const text = readFileSync(root(rel), 'utf8');
        for (const m of text.matchAll(/projectPath\(([^)]*)\)/g)) {
          const parts: string[] = [];
          for (const arg of m[1]!.split(',')) {
            const lit = /^\s*'([^'$`]*)'\s*$/.exec(arg);
            if (!lit) break;
            parts.push(lit[1]!);
          }
          if (parts.length > 0) out.push(parts.join('/'));
        }
      }
    }
  };
  walk(dir);
  return out;
}

for (const [file, service] of [
  ['Dockerfile.proxy', 'proxy'],
  ['Dockerfile.backend', 'backend'],
] as const) {
  describe(file, () => {
    const stages = readDockerfile(root(file));
    const runtime = stages.at(-1)!;
    const produced = producedPaths(stages);
    const wd = workdirAt(runtime, runtime.instructions.length);

    it('is multi-stage, with a slim Node runtime running as a non-root user', () => {
      expect(stages.length).toBeGreaterThanOrEqual(2);
      expect(runtime.from).toMatch(/^node:(\$\{NODE_VERSION\}|\d+)-slim$/);
      const user = last(runtime, 'USER')?.args.trim();
      expect(user).toBeDefined();
      expect(['root', '0', '0:0']).not.toContain(user);
    });

    it('copies only what exists in the repository or an earlier stage made', () => {
      stages.forEach((stage) => {
        for (const c of copies(stage)) {
          for (const src of c.sources) {
            if (c.from === null) {
              expect(existsSync(root(src)), `${file}:${c.line}: COPY ${src}`).toBe(true);
            } else {
              const made = produced.get(c.from);
              expect(made, `${file}:${c.line}: unknown stage ${c.from}`).toBeDefined();
              const hit = [...made!].some((p) => under(src.replace(/\/$/, ''), p) || under(p, src));
              expect(
                hit,
                `${file}:${c.line}: COPY --from=${c.from} ${src} (stage has ${[...made!].join(', ')})`,
              ).toBe(true);
            }
          }
        }
      });
    });

    it('runs only our compiled entry points, existing subcommands and package.json scripts', () => {
      const entry = last(runtime, 'ENTRYPOINT');
      const cmd = last(runtime, 'CMD');
      const health = last(runtime, 'HEALTHCHECK');
      expect(health, 'HEALTHCHECK').toBeDefined();
      const healthCmd = /(?:^|\s)CMD\s+(.*)$/.exec(health!.args)![1]!;
      const commands = [
        [...(entry ? commandWords(entry.args) : []), ...(cmd ? commandWords(cmd.args) : [])],
        commandWords(healthCmd),
      ];
      const made = produced.get(`#${stages.length - 1}`)!;
      for (const words of commands) {
        const [program, script, sub] = words;
        if (program === 'npm') {
          const name = script === 'run' ? sub! : script!;
          expect(Object.keys(pkg.scripts), `npm script ${name}`).toContain(name);
          continue;
        }
        expect(program).toBe('node');
        expect(script, 'a compiled file').toMatch(new RegExp(`^${OUT_DIR}/.+\\.js$`));
        const source = script!.slice(OUT_DIR.length + 1).replace(/\.js$/, '.ts');
        expect(existsSync(root(source)), `${script} is built from ${source}`).toBe(true);
        expect(compiled(source), `${source} is in tsconfig's include`).toBe(true);
        expect(
          [...made].some((p) => under(posix.join(wd, script!), p)),
          `${script} is in the image`,
        ).toBe(true);
        if (source === 'cli/floodgate.ts') expect([...cliCommands()], `floodgate ${sub}`).toContain(sub);
      }
    });

    it(`checks /healthz on the port the ${service} listens on`, () => {
      const health = last(runtime, 'HEALTHCHECK')!.args;
      const url = new URL(/http:\/\/\S+?(?="|\s|$)/.exec(health)![0]);
      expect(url.pathname).toBe('/healthz');
      expect(url.hostname).toBe('127.0.0.1');
      const env = envOf(runtime);
      if (service === 'backend') {
        expect(url.port).toBe(env.PORT);
        expect(env.HOST).toBe('0.0.0.0');
      } else {
        // The admin port of the policy the image runs by default.
        const config = env.FLOODGATE_CONFIG!;
        expect(config.startsWith(wd + '/')).toBe(true);
        const rel = config.slice(wd.length + 1);
        const r = parsePolicy(readFileSync(root(rel), 'utf8'), rel, {});
        expect(r.ok ? [] : r.errors).toEqual([]);
        if (!r.ok) return;
        expect(String(r.policy.admin.listen.port)).toBe(url.port);
        expect(r.policy.admin.listen.host).toBe('0.0.0.0');
        expect(r.policy.listen.host).toBe('0.0.0.0');
        expect(landsAt(runtime, rel)).toContain(config);
      }
    });

    it('holds package.json at the working directory (projectRoot() walks up to it)', () => {
      const made = produced.get(`#${stages.length - 1}`)!;
      expect(made.has(posix.join(wd, 'package.json'))).toBe(true);
    });
  });
}

/** The npm install/prune commands that made the runtime stage's node_modules, in order, through `FROM` chains. */
function nodeModulesInstalls(stages: Stage[]): string[] {
  const runtime = stages.at(-1)!;
  const copy = copies(runtime).find((c) => c.sources.some((s) => /(^|\/)node_modules\/?$/.test(s)));
  expect(copy?.from, 'node_modules comes from a build stage').toBeTruthy();
  const chain: Stage[] = [];
  for (let s = stages.find((x) => x.name === copy!.from); s; s = stages.find((x) => x.name === s!.from)) {
    chain.unshift(s);
  }
  return chain.flatMap((s) =>
    s.instructions
      .filter((i) => i.keyword === 'RUN' && /\bnpm (ci|install|prune)\b/.test(i.args))
      .map((i) => i.args),
  );
}

describe('Dockerfile.proxy', () => {
  it("installs its runtime node_modules without dev or optional packages, so without the backend's", () => {
    const installs = nodeModulesInstalls(readDockerfile(root('Dockerfile.proxy')));
    expect(installs.length).toBeGreaterThan(0);
    // The last install or prune decides what the image's node_modules holds.
    expect(installs.at(-1)).toMatch(/--omit=dev\b/);
    expect(installs.at(-1)).toMatch(/--omit=optional\b/);
    expect(Object.keys(pkg.optionalDependencies)).toEqual(
      expect.arrayContaining(['bullmq', 'busboy', 'whisper-node']),
    );
  });

  it("copies the proxy's compiled code and not the backend's", () => {
    const runtime = readDockerfile(root('Dockerfile.proxy')).at(-1)!;
    const fromDist = copies(runtime)
      .flatMap((c) => c.sources)
      .filter((s) => /^(\/app\/)?dist(\/|$)/.test(s));
    expect(fromDist.map((s) => s.replace(/^\/app\//, '').replace(/\/$/, '')).sort()).toEqual([
      'dist/cli',
      'dist/core',
      'dist/proxy',
    ]);
  });

  it('holds every file the proxy reads from beside its sources', () => {
    const stages = readDockerfile(root('Dockerfile.proxy'));
    const runtime = stages.at(-1)!;
    const wd = workdirAt(runtime, runtime.instructions.length);
    const needed = ['cli', 'core', 'proxy'].flatMap(filesReadBesideSources);
    expect(needed).toEqual(
      expect.arrayContaining(['proxy/ratelimit/lua', 'proxy/http/dashboard/index.html', 'package.json']),
    );
    // From the build context, or (package.json, for `floodgate --version`) from an earlier stage.
    const made = producedPaths(stages).get(`#${stages.length - 1}`)!;
    for (const path of needed) {
      const at = posix.join(wd, path);
      expect([...landsAt(runtime, path), ...(made.has(at) ? [at] : [])], path).toContain(at);
    }
  });
});

describe('Dockerfile.backend', () => {
  const stages = readDockerfile(root('Dockerfile.backend'));
  const runtime = stages.at(-1)!;

  it('builds whisper.cpp in a builder stage with backend/whisper/build.sh, and ships the binary', () => {
    const builder = stages.find((s) =>
      s.instructions.some((i) => i.args.includes('backend/whisper/build.sh')),
    );
    expect(builder?.name).toBeTruthy();
    expect(builder).not.toBe(runtime);
    const wd = workdirAt(runtime, runtime.instructions.length);
    expect(
      producedPaths(stages)
        .get(`#${stages.length - 1}`)!
        .has(posix.join(wd, whisperOutput())),
    ).toBe(true);
  });

  it('downloads the WHISPER_MODEL build arg (default base.en) with its checksum, and points at it', () => {
    const modelStage = stages.find((s) => s.instructions.some((i) => /model download/.test(i.args)))!;
    expect(modelStage).not.toBe(runtime);
    const name = argDefault(modelStage, 'WHISPER_MODEL');
    expect(name).toBe('base.en');
    // The downloader verifies what it fetched against the catalog's SHA-1: the name must be in it.
    expect(MODEL_SHA1[name!]).toMatch(/^[0-9a-f]{40}$/);
    const run = modelStage.instructions.find((i) => /model download/.test(i.args))!.args;
    expect(run).toMatch(/^node dist\/cli\/floodgate\.js model download "\$WHISPER_MODEL" --dir (\S+)$/);
    const dir = /--dir (\S+)$/.exec(run)![1]!;
    // At run time WHISPER_MODEL is the model's path: the downloaded file, under the catalog's name.
    expect(argDefault(runtime, 'WHISPER_MODEL')).toBe(name);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's ${VAR}, not a template
    expect(envOf(runtime).WHISPER_MODEL).toBe(posix.join(dir, modelFileName('${WHISPER_MODEL}')));
    expect(
      copies(runtime).some((c) => c.from === modelStage.name && c.sources.some((s) => under(s, dir))),
    ).toBe(true);
  });

  it("keeps the backend's packages (optionalDependencies) in its node_modules", () => {
    const installs = nodeModulesInstalls(stages);
    expect(installs.length).toBeGreaterThan(0);
    for (const args of installs) expect(args).not.toMatch(/--omit=optional|--no-optional/);
  });

  it('fails the image build, rather than skipping, when whisper.cpp cannot be built', () => {
    const run = stages
      .flatMap((s) => s.instructions)
      .find((i) => i.args.includes('backend/whisper/build.sh'))!;
    expect(run.args).toMatch(/\bWHISPER_BUILD_REQUIRED=1\b/);
  });

  it('installs ffmpeg in the runtime and keeps job data in a volume', () => {
    expect(
      runtime.instructions.some((i) => i.keyword === 'RUN' && /apt-get install[^&]*\bffmpeg\b/.test(i.args)),
    ).toBe(true);
    const dataDir = envOf(runtime).DATA_DIR;
    expect(last(runtime, 'VOLUME')?.args.trim()).toBe(dataDir);
  });
});
