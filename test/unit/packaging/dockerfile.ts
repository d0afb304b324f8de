// Just enough of a Dockerfile reader for the packaging tests: instructions with continuation lines
// joined and comments dropped, grouped by build stage, with exec-form arrays parsed as JSON.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

export interface Instruction {
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly name: string | null;
  /** The image or the earlier stage it starts from. */
  readonly from: string;
  readonly instructions: Instruction[];
}

export interface CopyInstruction {
  readonly from: string | null;
  readonly sources: string[];
  readonly dest: string;
  readonly line: number;
}

export function readDockerfile(path: string): Stage[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const instructions: Instruction[] = [];
  let buffer = '';
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (buffer === '' && (line === '' || line.startsWith('#'))) return;
    if (buffer !== '' && line.startsWith('#')) return;
    if (buffer === '') start = i + 1;
    const continued = line.endsWith('\\');
    buffer += (buffer === '' ? '' : ' ') + (continued ? line.slice(0, -1).trim() : line);
    if (continued) return;
    const m = /^(\S+)\s*(.*)$/.exec(buffer)!;
    instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start });
    buffer = '';
  });

  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ from: m[1]!, name: m[2] ?? null, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

export function copies(stage: Stage): CopyInstruction[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length) ?? null;
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1)!, line: i.line };
    });
}

/** The stage's WORKDIR at each instruction index (absolute, '/' before any). */
export function workdirAt(stage: Stage, index: number, inherited = '/'): string {
  let dir = inherited;
  stage.instructions.slice(0, index).forEach((i) => {
    if (i.keyword === 'WORKDIR') dir = posix.resolve(dir, i.args.trim());
  });
  return dir;
}

/** An exec-form array (`["node", "x.js"]`), or the shell form split on spaces. */
export function commandWords(args: string): string[] {
  const trimmed = args.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed) as string[];
  return trimmed.split(/\s+/);
}

/** The last instruction of a kind in a stage (CMD, ENTRYPOINT, HEALTHCHECK, USER ...). */
export function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1);
}

/** `ARG NAME=default` values declared in a stage or before the first FROM (not tracked: none here). */
export function argDefault(stage: Stage, name: string): string | undefined {
  for (const i of stage.instructions) {
    if (i.keyword !== 'ARG') continue;
    const m = /^(\w+)(?:=(.*))?$/.exec(i.args.trim());
    if (m && m[1] === name) return m[2];
  }
  return undefined;
}

/** ENV settings of a stage, both `ENV A=b C=d` and `ENV A b` forms; values keep ${VAR} references. */
export function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions) {
    if (i.keyword !== 'ENV') continue;
    const pairs = i.args.match(/(\w+)=("[^"]*"|\S+)/g);
    if (pairs) {
      for (const p of pairs) {
        const eq = p.indexOf('=');
        env[p.slice(0, eq)] = p.slice(eq + 1).replace(/^"|"$/g, '');
      }
    } else {
      const m = /^(\w+)\s+(.*)$/.exec(i.args.trim());
      if (m) env[m[1]!] = m[2]!;
    }
  }
  return env;
}
