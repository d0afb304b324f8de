// The whisper.cpp adapter against a fake `main` (a node script): argument building, output
// parsing and error mapping, without the real binary or a model.
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMediaError } from '../../../backend/media/errors.js';
import {
  locateWhisperBinary,
  parseWhisperJson,
  WHISPER_LANGUAGES,
  WhisperCppTranscriber,
  whisperCppArgs,
} from '../../../backend/media/whisper.js';
import { mediaFailure } from '../../helpers/media-error.js';
import { waitFor } from '../../helpers/wait.js';

/** What whisper.cpp 1.5's `main -oj` writes, abridged to the parts we read. */
function whisperJson(segments: { from: number; to: number; text: string }[], language = 'en'): string {
  const items = segments
    .map(
      (s) =>
        `\t\t{\n\t\t\t"timestamps": {"from": "x", "to": "y"},\n\t\t\t"offsets": {\n\t\t\t\t"from": ${s.from},\n` +
        `\t\t\t\t"to": ${s.to}\n\t\t\t},\n\t\t\t"text": "${s.text}"\n\t\t}`,
    )
    .join(',\n');
  return (
    `{\n\t"systeminfo": "AVX = 1 | ",\n\t"model": {"type": "base"},\n\t"params": {"model": "m", "language": "auto", ` +
    `"translate": false},\n\t"result": {\n\t\t"language": "${language}"\n\t},\n\t"transcription": [\n${items}\n\t]\n}\n`
  );
}

// The fake reads its behaviour from the "model" file, since the transcriber passes no env.
const FAKE_MAIN = `#!${process.execPath}
const fs = require('fs');
const argv = process.argv.slice(2);
const arg = (flag) => argv[argv.indexOf(flag) + 1];
const mode = fs.readFileSync(arg('-m'), 'utf8').trim();
fs.writeFileSync(arg('-m') + '.argv', JSON.stringify(argv));
process.stderr.write('whisper_init_from_file_with_params_no_state: loading model\\n');
if (mode === 'fail') { process.stderr.write('error: failed to initialize whisper context\\n'); process.exit(3); }
if (mode === 'no-json') { process.stderr.write("error: failed to read WAV file '" + arg('-f') + "'\\n"); process.exit(0); }
if (mode === 'hang') { setInterval(() => {}, 1000); return; }
const json = mode === 'garbage' ? '{"transcription": [' : ${JSON.stringify(
  whisperJson([
    { from: 0, to: 2500, text: ' Hello \\"world\\"' },
    { from: 2500, to: 4010, text: ' tab\there' },
  ]),
)};
fs.writeFileSync(arg('-of') + '.json', json);
`;

let dir: string;
let fakeMain: string;
async function modelFile(mode: string): Promise<string> {
  const path = join(dir, `model-${mode}.bin`);
  await writeFile(path, mode);
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'floodgate-whisper-unit-'));
  fakeMain = join(dir, 'main');
  await writeFile(fakeMain, FAKE_MAIN);
  await chmod(fakeMain, 0o755);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('whisperCppArgs', () => {
  it('asks for a JSON file and picks the language and threads', () => {
    expect(
      whisperCppArgs({ model: '/m.bin', threads: 2, fastDecode: false }, '/a b.wav', '/tmp/x/out', 'en'),
    ).toEqual(['-m', '/m.bin', '-f', '/a b.wav', '-l', 'en', '-t', '2', '-oj', '-of', '/tmp/x/out']);
  });

  it('adds greedy decoding without fallback in fast mode', () => {
    const args = whisperCppArgs({ model: 'm', threads: 1, fastDecode: true }, 'w', 'o', 'auto');
    expect(args.slice(-5)).toEqual(['-nf', '-bs', '1', '-bo', '1']);
  });

  it('passes a prompt as one argument after --prompt, whatever it looks like', () => {
    const options = { model: 'm', threads: 1, fastDecode: false };
    const prompt = '-m /etc/passwd; $(rm -rf /) "quoted"\nline';
    const args = whisperCppArgs(options, 'w', 'o', 'en', prompt);
    expect(args.slice(-2)).toEqual(['--prompt', prompt]);
    expect(whisperCppArgs(options, 'w', 'o', 'en', '')).not.toContain('--prompt');
  });
});

describe('parseWhisperJson', () => {
  it('reads offsets in ms as seconds, keeps text as emitted, and the detected language', () => {
    const t = parseWhisperJson(
      whisperJson(
        [
          { from: 0, to: 2500, text: ' Hello' },
          { from: 2500, to: 30000, text: ' world' },
        ],
        'de',
      ),
    );
    expect(t).toEqual({
      language: 'de',
      segments: [
        { start: 0, end: 2.5, text: ' Hello' },
        { start: 2.5, end: 30, text: ' world' },
      ],
    });
  });

  it('survives the raw control characters and escaped quotes whisper.cpp writes', () => {
    const raw = whisperJson([{ from: 0, to: 1000, text: ' say \\"hi\\"\tnow\u0001' }]);
    expect(parseWhisperJson(raw).segments[0]!.text).toBe(' say "hi" now ');
  });

  it('decodes invalid UTF-8 (a token that split a character) as U+FFFD instead of failing', () => {
    const raw = Buffer.concat([
      Buffer.from(whisperJson([{ from: 0, to: 1000, text: 'XX' }]).split('XX')[0]!),
      Buffer.from([0x20, 0xe6, 0x97]), // the first two bytes of a three-byte character
      Buffer.from(whisperJson([{ from: 0, to: 1000, text: 'XX' }]).split('XX')[1]!),
    ]);
    expect(parseWhisperJson(raw).segments[0]!.text).toBe(' \ufffd');
  });

  it('accepts an empty transcription (silence) and never lets an end precede its start', () => {
    expect(parseWhisperJson(whisperJson([])).segments).toEqual([]);
    expect(parseWhisperJson(whisperJson([{ from: 5000, to: 4000, text: ' x' }])).segments[0]).toEqual({
      start: 5,
      end: 5,
      text: ' x',
    });
  });

  it('fails with bad_output on anything that is not a transcript', () => {
    for (const raw of ['', '{', '[]', '{"transcription": {}}', '{"transcription": [{"text": "x"}]}']) {
      let caught: unknown;
      try {
        parseWhisperJson(raw);
      } catch (err) {
        caught = err;
      }
      expect(isMediaError(caught, 'bad_output'), raw).toBe(true);
    }
  });
});

describe('WhisperCppTranscriber (fake binary)', () => {
  it('runs the binary with an output file and returns its transcript', async () => {
    const t = new WhisperCppTranscriber({
      binary: fakeMain,
      model: await modelFile('ok'),
      threads: 3,
      tmpDir: dir,
    });
    const result = await t.transcribe('/some/segment.wav', { language: 'EN' });
    expect(result.language).toBe('en');
    expect(result.segments).toEqual([
      { start: 0, end: 2.5, text: ' Hello "world"' },
      { start: 2.5, end: 4.01, text: ' tab here' },
    ]);
  });

  it('passes the language (auto when omitted), threads and fast flags to the binary', async () => {
    const model = await modelFile('ok');
    const t = new WhisperCppTranscriber({
      binary: fakeMain,
      model,
      threads: 1,
      fastDecode: true,
      tmpDir: dir,
    });
    await t.transcribe('/x y.wav');
    const argv = JSON.parse(await readFile(`${model}.argv`, 'utf8')) as string[];
    expect(argv.slice(0, 8)).toEqual(['-m', model, '-f', '/x y.wav', '-l', 'auto', '-t', '1']);
    expect(argv).toContain('-oj');
    expect(argv.slice(-5)).toEqual(['-nf', '-bs', '1', '-bo', '1']);
  });

  it('maps a non-zero exit to process_failed with the stderr tail', async () => {
    const t = new WhisperCppTranscriber({ binary: fakeMain, model: await modelFile('fail'), tmpDir: dir });
    const err = await mediaFailure(t.transcribe('/x.wav'));
    expect(err.code).toBe('process_failed');
    expect(err.exitCode).toBe(3);
    expect(err.stderrTail).toContain('failed to initialize whisper context');
  });

  it('maps a missing JSON file (main skips unreadable WAVs and exits 0) to bad_output', async () => {
    const t = new WhisperCppTranscriber({ binary: fakeMain, model: await modelFile('no-json'), tmpDir: dir });
    const err = await mediaFailure(t.transcribe('/x.wav'));
    expect(err.code).toBe('bad_output');
    expect(err.stderrTail).toContain('failed to read WAV file');
  });

  it('maps unparsable JSON to bad_output', async () => {
    const t = new WhisperCppTranscriber({ binary: fakeMain, model: await modelFile('garbage'), tmpDir: dir });
    expect((await mediaFailure(t.transcribe('/x.wav'))).code).toBe('bad_output');
  });

  it('refuses an unknown language before starting anything', async () => {
    const t = new WhisperCppTranscriber({ binary: fakeMain, model: await modelFile('ok'), tmpDir: dir });
    expect((await mediaFailure(t.transcribe('/x.wav', { language: 'klingon' }))).code).toBe(
      'invalid_argument',
    );
    expect(WHISPER_LANGUAGES.has('en')).toBe(true);
    expect(WHISPER_LANGUAGES.size).toBe(100);
  });

  it('reports a missing model or binary as engine_unavailable', async () => {
    const noModel = new WhisperCppTranscriber({
      binary: fakeMain,
      model: join(dir, 'absent.bin'),
      tmpDir: dir,
    });
    expect((await mediaFailure(noModel.transcribe('/x.wav'))).code).toBe('engine_unavailable');
    const noBinary = new WhisperCppTranscriber({
      binary: join(dir, 'absent-main'),
      model: await modelFile('ok'),
      tmpDir: dir,
    });
    expect((await mediaFailure(noBinary.transcribe('/x.wav'))).code).toBe('engine_unavailable');
  });

  it('kills the binary on abort and cleans up its temp dir', async () => {
    const model = await modelFile('hang');
    const t = new WhisperCppTranscriber({ binary: fakeMain, model, tmpDir: dir });
    const controller = new AbortController();
    const run = t.transcribe('/x.wav', { signal: controller.signal });
    // The fake writes its argv file first thing; seeing it means the process is up.
    await waitFor(() => readFile(`${model}.argv`, 'utf8'), { what: 'the fake to start' });
    controller.abort();
    expect((await mediaFailure(run)).code).toBe('aborted');
    expect((await readdir(dir)).filter((f) => f.startsWith('floodgate-whisper-'))).toEqual([]);
  });
});

describe('locateWhisperBinary', () => {
  it('explains how to build the binary when it is missing', () => {
    const saved = process.env['WHISPER_CPP_DIR'];
    process.env['WHISPER_CPP_DIR'] = join(tmpdir(), 'floodgate-no-whisper-here');
    try {
      let caught: unknown;
      try {
        locateWhisperBinary();
      } catch (err) {
        caught = err;
      }
      expect(isMediaError(caught, 'engine_unavailable')).toBe(true);
      expect((caught as Error).message).toContain('npm run build:whisper');
    } finally {
      if (saved === undefined) delete process.env['WHISPER_CPP_DIR'];
      else process.env['WHISPER_CPP_DIR'] = saved;
    }
  });
});
