// The test-model generator itself: the header whisper.cpp reads, and reproducible bytes.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildTinyGgmlModel, tinyModelTensors, toHalf } from '../../helpers/ggml-model.js';

describe('toHalf', () => {
  it('encodes binary16 exactly, rounding to nearest even', () => {
    expect(toHalf(0)).toBe(0x0000);
    expect(toHalf(-0)).toBe(0x8000);
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(0.5)).toBe(0x3800);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(1e6)).toBe(0x7c00);
    expect(toHalf(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalf(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // halfway: rounds to even (down)
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // halfway: rounds to even (up)
  });
});

describe('buildTinyGgmlModel', () => {
  const model = buildTinyGgmlModel();

  it('starts with the ggml magic and the 11 hparams whisper.cpp reads', () => {
    expect(model.readUInt32LE(0)).toBe(0x67676d6c);
    const hparams = Array.from({ length: 11 }, (_, i) => model.readInt32LE(4 + 4 * i));
    expect(hparams).toEqual([51864, 1500, 64, 2, 1, 448, 64, 2, 1, 80, 1]);
    expect([model.readInt32LE(48), model.readInt32LE(52)]).toEqual([80, 201]);
  });

  it('has a vocabulary of 51864 tokens including " "', () => {
    let offset = 56 + 80 * 201 * 4;
    const count = model.readInt32LE(offset);
    offset += 4;
    const tokens: string[] = [];
    for (let i = 0; i < count; i++) {
      const len = model.readUInt32LE(offset);
      tokens.push(model.toString('utf8', offset + 4, offset + 4 + len));
      offset += 4 + len;
    }
    expect(count).toBe(51864);
    expect(tokens).toContain(' ');
    expect(new Set(tokens).size).toBe(count);
  });

  it('lists each tensor whisper_model_load allocates exactly once', () => {
    const names = tinyModelTensors(64, 1).map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((n) => n.startsWith('encoder.blocks.0.'))).toHaveLength(15);
    expect(names.filter((n) => n.startsWith('decoder.blocks.0.'))).toHaveLength(24);
    expect(names.filter((n) => !n.includes('.blocks.'))).toHaveLength(11);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const hash = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(hash(buildTinyGgmlModel())).toBe(hash(model));
    expect(hash(buildTinyGgmlModel({ seed: 2 }))).not.toBe(hash(model));
  });

  it('refuses a single head, which crashes this whisper.cpp', () => {
    expect(() => buildTinyGgmlModel({ heads: 1 })).toThrow(/heads/);
  });
});
