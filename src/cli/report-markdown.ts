/**
 * report.md of `memwire bench report`: what ran and how long, the targets met and missed, one
 * table per benchmark (every row of every runtime: memwire, anchor, ratio = memwire / anchor,
 * target), the charts, and the machine and versions each runtime recorded. Numbers are the
 * benches' own, formatted, never recomputed (the ratio included).
 */
import type { BenchRun, FullReport, Row } from './report-model.js';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Three significant digits, as the benches' own tables print. */
export function formatValue(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

function formatRatio(ratio: number | null): string {
  return ratio === null || !Number.isFinite(ratio) ? '—' : `${ratio.toFixed(2)}×`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

function verdictOf(run: BenchRun, row: Row): string {
  const target = run.report?.targets.find((t) => t.case === row.case && t.metric === row.metric && t.anchorName === row.anchorName);
  if (!target) return '';
  const bound = target.minRatio !== undefined ? `≥ ${target.minRatio}×` : `≤ ${target.maxRatio}×`;
  return `${bound} ${target.pass === null ? '? (no anchor)' : target.pass ? 'met' : '**missed**'}`;
}

function duration(seconds: number): string {
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s` : `${seconds.toFixed(1)} s`;
}

export function renderMarkdown(full: FullReport): string {
  const out: string[] = [];
  const placeName = (run: BenchRun) => (run.place === 'rxe' ? 'rxe guest' : 'host');
  out.push('# memwire benchmark report', '');
  out.push(
    `Run ${full.startedAt} → ${full.finishedAt} with \`memwire bench report${full.options.quick ? ' --quick' : ''}${full.options.rxe ? ' --rxe' : ''}\`. ` +
      'Every benchmark measures its anchor in the same run; ratio = memwire / anchor (for latencies lower is better, for rates higher). ' +
      'Compare ratios, not absolute figures: they come from one run on one machine.',
    '',
  );

  out.push('## Runs', '');
  out.push(
    ...table(
      ['bench', 'runtime', 'where', 'status', 'time'],
      full.runs.map((run) => [run.bench, run.runtime, placeName(run), run.status === 'ok' ? 'ok' : `${run.status}: ${run.error ?? ''}`, run.status === 'skipped' ? '' : duration(run.seconds)]),
    ),
    '',
  );

  const targets = full.runs.flatMap((run) => (run.report?.targets ?? []).map((t) => ({ run, t })));
  out.push('## Targets', '');
  if (targets.length === 0) out.push('No target was judged in this run.', '');
  else {
    const ratioOf = (run: BenchRun, t: (typeof targets)[number]['t']) =>
      run.report?.rows.find((r) => r.case === t.case && r.metric === t.metric && r.anchorName === t.anchorName)?.ratio ?? null;
    const met = targets.filter(({ t }) => t.pass === true).length;
    const missed = targets.filter(({ t }) => t.pass === false).length;
    out.push(`${met} met, ${missed} missed, ${targets.length - met - missed} not judged (no anchor).`, '');
    out.push(
      ...table(
        ['bench', 'runtime', 'where', 'target', 'ratio', 'verdict'],
        targets.map(({ run, t }) => [run.bench, run.runtime, placeName(run), t.text, formatRatio(ratioOf(run, t)), t.pass === null ? '? (no anchor)' : t.pass ? 'met' : '**missed**']),
      ),
      '',
    );
  }

  const benches = [...new Set(full.runs.map((r) => r.bench))];
  for (const bench of benches) {
    const runs = full.runs.filter((r) => r.bench === bench && r.report);
    if (runs.length === 0) continue;
    out.push(`## ${bench}`, '');
    for (const chart of full.charts.filter((c) => c.bench === bench)) out.push(`![${bench} (${chart.place})](${chart.file})`, '');
    out.push(
      ...table(
        ['runtime', 'where', 'case', 'metric', 'unit', 'memwire', 'anchor', 'anchor is', 'ratio', 'target'],
        runs.flatMap((run) =>
          run.report!.rows.map((row) => [run.runtime, placeName(run), row.case, row.metric, row.unit, formatValue(row.memwire), formatValue(row.anchor), row.anchorName, formatRatio(row.ratio), verdictOf(run, row)]),
        ),
      ),
      '',
    );
    // The same note from several runtimes is printed once, naming them.
    const notes = new Map<string, string[]>();
    for (const run of runs) for (const note of run.report!.notes) notes.set(note, [...(notes.get(note) ?? []), `${run.runtime}${run.place === 'rxe' ? ' (rxe)' : ''}`]);
    if (notes.size > 0) out.push('Notes:', '', ...[...notes].map(([note, who]) => `- ${[...new Set(who)].join(', ')}: ${note}`), '');
  }

  if (full.chartsNote) out.push(`_${full.chartsNote}_`, '');

  out.push('## Machine and versions', '');
  const recorded = full.runs.filter((r) => r.report);
  const byRuntime = new Map<string, Record<string, string | null>>();
  for (const run of recorded) {
    const key = `${run.runtime} (${placeName(run)})`;
    if (!byRuntime.has(key)) byRuntime.set(key, run.report!.versions);
  }
  const keys = [...new Set([...byRuntime.values()].flatMap((v) => Object.keys(v)))];
  const columns = [...byRuntime.keys()];
  out.push(
    ...table(
      ['', ...columns],
      keys.map((key) => [key, ...columns.map((c) => byRuntime.get(c)![key] ?? '—')]),
    ),
    '',
    'The load average is the one the first bench of each runtime recorded; the others are in report.json.',
    '',
  );
  return out.join('\n');
}
