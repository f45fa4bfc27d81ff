// The newcomer's documents: README.md, docs/*.md and bench/README.md. Every relative link
// resolves to a file or folder of the repository (and, for a Markdown file with #anchor, to one of
// its headings); nothing points outside the repository; the README stays within 200 lines.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const documents = [
  'README.md',
  'bench/README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    anchors.add(slug);
  }
  return anchors;
}

/** [text](target) links outside code blocks and code spans. */
function linksOf(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);
}

describe('documentation links', () => {
  it('finds the documents', () => {
    expect(documents).toContain('docs/shm-and-waiting.md');
    expect(documents.length).toBeGreaterThanOrEqual(8);
  });

  for (const doc of documents) {
    it(`${doc}: every relative link resolves inside the repository`, () => {
      const text = readFileSync(join(root, doc), 'utf8');
      const problems: string[] = [];
      for (const link of linksOf(text)) {
        if (/^[a-z]+:/i.test(link)) continue; // https:, mailto: — not a file of ours
        const [path, anchor] = link.split('#');
        const target = path ? resolve(root, dirname(doc), decodeURI(path)) : join(root, doc);
        const inside = relative(root, target);
        if (inside.startsWith('..')) problems.push(`${link}: outside the repository`);
        else if (!existsSync(target)) problems.push(`${link}: no such file`);
        else if (anchor && statSync(target).isFile() && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) {
          problems.push(`${link}: no heading #${anchor}`);
        }
      }
      expect(problems).toEqual([]);
    });

    it(`${doc}: names no file outside the repository`, () => {
      const text = readFileSync(join(root, doc), 'utf8');
      expect(text).not.toMatch(/seeds\/|\.\.\/shared|\/work\//);
    });
  }

  it('README.md is at most 200 lines', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8').trimEnd().split('\n').length).toBeLessThanOrEqual(200);
  });
});
