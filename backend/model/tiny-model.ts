// A tiny random-weight whisper ggml model, for tests and for an offline first run (`floodgate model
// tiny-test`): real weights need a download. The layout follows whisper_model_load in
// node_modules/whisper-node/lib/whisper.cpp/whisper.cpp (whisper.cpp 1.5.0). Its transcripts are random
// tokens; what it proves is that the real binary loads a model, decodes audio, and emits timestamped
// segments, fast and deterministically. It needs greedy decoding (WHISPER_FAST_DECODE=1): with
// temperature fallback, whisper.cpp retries a random model's output for minutes.
import { seededRandom } from '../../core/prng.js';

export interface TinyModelOptions {
  /** n_audio_state = n_text_state. */
  state?: number;
  /** Attention heads; 1 head crashes this whisper.cpp version. */
  heads?: number;
  layers?: number;
  seed?: number;
}

// Bump whenever the bytes produced for the same options change, so stale caches are not reused.
export const TINY_MODEL_GENERATOR_VERSION = 1;

const GGML_MAGIC = 0x67676d6c;
const N_VOCAB = 51864; // English-only vocabulary size: no language tokens to worry about.
const N_AUDIO_CTX = 1500;
const N_TEXT_CTX = 448;
const N_MELS = 80;
const N_FFT = 201;
const FTYPE_F16 = 1;
const SPACE_TOKEN_ID = 220; // where GPT-2 keeps " "; whisper.cpp looks " " up by string when suppressing blanks.
const TOKEN_EOT = 50256;

enum TensorType {
  F32 = 0,
  F16 = 1,
}

interface Tensor {
  name: string;
  /** Fastest-varying first, as ggml stores them. */
  dims: number[];
  type: TensorType;
  init: 'normal' | 'zeros' | 'ones';
}

/** The tensor list of whisper_model_load, for one encoder and one decoder stack of `layers`. */
export function tinyModelTensors(state: number, layers: number): Tensor[] {
  const s = state;
  const f32 = (name: string, dims: number[], init: Tensor['init'] = 'normal'): Tensor => ({
    name,
    dims,
    type: TensorType.F32,
    init,
  });
  const f16 = (name: string, dims: number[]): Tensor => ({
    name,
    dims,
    type: TensorType.F16,
    init: 'normal',
  });
  const norm = (prefix: string): Tensor[] => [
    f32(`${prefix}.weight`, [s], 'ones'),
    f32(`${prefix}.bias`, [s], 'zeros'),
  ];
  const attention = (prefix: string): Tensor[] => [
    f16(`${prefix}.query.weight`, [s, s]),
    f32(`${prefix}.query.bias`, [s], 'zeros'),
    f16(`${prefix}.key.weight`, [s, s]),
    f16(`${prefix}.value.weight`, [s, s]),
    f32(`${prefix}.value.bias`, [s], 'zeros'),
    f16(`${prefix}.out.weight`, [s, s]),
    f32(`${prefix}.out.bias`, [s], 'zeros'),
  ];
  const mlp = (prefix: string): Tensor[] => [
    ...norm(`${prefix}.mlp_ln`),
    f16(`${prefix}.mlp.0.weight`, [s, 4 * s]),
    f32(`${prefix}.mlp.0.bias`, [4 * s], 'zeros'),
    f16(`${prefix}.mlp.2.weight`, [4 * s, s]),
    f32(`${prefix}.mlp.2.bias`, [s], 'zeros'),
  ];

  const tensors: Tensor[] = [
    f32('encoder.positional_embedding', [s, N_AUDIO_CTX]),
    f16('encoder.conv1.weight', [3, N_MELS, s]),
    // Conv biases are stored as [1, state]; the loader repeats them along the time axis.
    f32('encoder.conv1.bias', [1, s], 'zeros'),
    f16('encoder.conv2.weight', [3, s, s]),
    f32('encoder.conv2.bias', [1, s], 'zeros'),
    ...norm('encoder.ln_post'),
    f32('decoder.positional_embedding', [s, N_TEXT_CTX]),
    f16('decoder.token_embedding.weight', [s, N_VOCAB]),
    ...norm('decoder.ln'),
  ];
  for (let i = 0; i < layers; i++) {
    const e = `encoder.blocks.${i}`;
    tensors.push(...mlp(e), ...norm(`${e}.attn_ln`), ...attention(`${e}.attn`));
    const d = `decoder.blocks.${i}`;
    tensors.push(
      ...mlp(d),
      ...norm(`${d}.attn_ln`),
      ...attention(`${d}.attn`),
      ...norm(`${d}.cross_attn_ln`),
      ...attention(`${d}.cross_attn`),
    );
  }
  return tensors;
}

function gaussian(rand: () => number): () => number {
  return () => {
    const u = 1 - rand(); // (0, 1]: log stays finite
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 binary32 → binary16 with round-to-nearest-even; Node 20 has no Float16Array. */
export function toHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  // A carry out of the mantissa bumps the exponent (or reaches infinity): still the right encoding.
  return sign | half;
}

function tokenText(id: number): string {
  if (id === SPACE_TOKEN_ID) return ' ';
  if (id >= TOKEN_EOT) return `<|special_${id}|>`;
  // Word-like placeholders keep the output readable and valid UTF-8/JSON.
  return ` w${id.toString(36)}`;
}

/** The model file's bytes; the same options always give the same bytes. */
export function buildTinyGgmlModel(options: TinyModelOptions = {}): Buffer {
  const { state = 64, heads = 2, layers = 1, seed = 1 } = options;
  if (heads < 2 || state % heads !== 0)
    throw new Error(`heads must be ≥ 2 and divide state (${state}/${heads})`);
  const rand = seededRandom(seed);
  const normal = gaussian(rand);
  const chunks: Buffer[] = [];
  const i32s = (...values: number[]): void => {
    const b = Buffer.alloc(4 * values.length);
    for (const [i, v] of values.entries()) b.writeInt32LE(v, 4 * i);
    chunks.push(b);
  };

  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(GGML_MAGIC);
  chunks.push(magic);
  i32s(N_VOCAB, N_AUDIO_CTX, state, heads, layers, N_TEXT_CTX, state, heads, layers, N_MELS, FTYPE_F16);

  i32s(N_MELS, N_FFT);
  const filters = Buffer.alloc(4 * N_MELS * N_FFT);
  for (let i = 0; i < N_MELS * N_FFT; i++) filters.writeFloatLE(rand() * 0.05, 4 * i);
  chunks.push(filters);

  i32s(N_VOCAB);
  for (let id = 0; id < N_VOCAB; id++) {
    const text = Buffer.from(tokenText(id), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(text.length);
    chunks.push(len, text);
  }

  // Scaled so activations stay O(1) through the residual stream of a random network.
  const scale = 1 / Math.sqrt(state);
  for (const t of tinyModelTensors(state, layers)) {
    const name = Buffer.from(t.name, 'utf8');
    i32s(t.dims.length, name.length, t.type, ...t.dims);
    chunks.push(name);
    const n = t.dims.reduce((a, b) => a * b, 1);
    const value = t.init === 'zeros' ? () => 0 : t.init === 'ones' ? () => 1 : () => normal() * scale;
    if (t.type === TensorType.F32) {
      const data = Buffer.alloc(4 * n);
      for (let i = 0; i < n; i++) data.writeFloatLE(value(), 4 * i);
      chunks.push(data);
    } else {
      const data = Buffer.alloc(2 * n);
      for (let i = 0; i < n; i++) data.writeUInt16LE(toHalf(value()), 2 * i);
      chunks.push(data);
    }
  }
  return Buffer.concat(chunks);
}
