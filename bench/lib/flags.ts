/**
 * Command-line flags of the benchmarks: `--name`, `--name value`, `--name=value`, typed by kind
 * (boolean, count, sizes, seconds), and the help text made from the same table.
 */

export class FlagError extends Error {}

export type FlagKind = 'boolean' | 'count' | 'sizes' | 'seconds';
export type FlagSpec = Record<string, { kind: FlagKind; help: string }>;

/** Flags every bench accepts. */
export const COMMON_FLAGS: FlagSpec = {
  quick: { kind: 'boolean', help: 'finish in well under a minute (fewer iterations)' },
  json: { kind: 'boolean', help: 'print one JSON object as the last line of stdout' },
  iterations: { kind: 'count', help: 'measured iterations (per size, where there are sizes)' },
  warmup: { kind: 'count', help: 'warm-up iterations, not measured' },
};

export interface ParsedFlags {
  readonly boolean: ReadonlySet<string>;
  readonly count: ReadonlyMap<string, number>;
  readonly sizes: ReadonlyMap<string, number[]>;
  readonly seconds: ReadonlyMap<string, number>;
}

/** "64" / "4k" / "4KiB" / "1M" → bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)\s*(b|k|kb|kib|m|mb|mib)?$/i.exec(text.trim());
  if (!match) throw new FlagError(`not a size: ${JSON.stringify(text)} (use e.g. 64, 4KiB, 1MiB)`);
  const unit = (match[2] ?? 'b').toLowerCase();
  const scale = unit.startsWith('m') ? 1 << 20 : unit.startsWith('k') ? 1024 : 1;
  const bytes = Number(match[1]) * scale;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new FlagError(`size must be positive: ${JSON.stringify(text)}`);
  return bytes;
}

/** 64 → "64B", 1024 → "1KiB", 65536 → "64KiB", 1 MiB → "1MiB". */
export function sizeLabel(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)}MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return `${bytes}B`;
}

/** Parse `--name`, `--name value`, `--name=value` and `--no-name` against `spec`; throws FlagError. */
export function parseFlags(argv: readonly string[], spec: FlagSpec): ParsedFlags {
  const boolean = new Set<string>();
  const count = new Map<string, number>();
  const sizes = new Map<string, number[]>();
  const seconds = new Map<string, number>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new FlagError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const entry = spec[name];
    if (!entry) throw new FlagError(`unknown flag --${name}`);
    if (entry.kind === 'boolean') {
      if (eq >= 0) throw new FlagError(`--${name} takes no value`);
      boolean.add(name);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new FlagError(`--${name} needs a value`);
    if (entry.kind === 'count') {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) throw new FlagError(`--${name} needs a whole number ≥ 0, got ${JSON.stringify(value)}`);
      count.set(name, n);
    } else if (entry.kind === 'seconds') {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new FlagError(`--${name} needs a positive number of seconds, got ${JSON.stringify(value)}`);
      seconds.set(name, n);
    } else {
      const list = value.split(',').filter((s) => s.trim() !== '').map(parseSize);
      if (list.length === 0) throw new FlagError(`--${name} needs at least one size`);
      sizes.set(name, list);
    }
  }
  return { boolean, count, sizes, seconds };
}

export function flagHelp(spec: FlagSpec): string {
  return Object.entries(spec)
    .map(([name, { kind, help }]) => {
      const shown = kind === 'boolean' ? `--${name}` : kind === 'sizes' ? `--${name} 64,4KiB` : kind === 'seconds' ? `--${name} S` : `--${name} N`;
      return `  ${shown.padEnd(22)} ${help}`;
    })
    .join('\n');
}
