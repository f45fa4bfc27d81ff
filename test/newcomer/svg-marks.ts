/**
 * Reads an SVG that Vega wrote: is it well-formed XML, and how many data marks (points and bars)
 * does it hold. Vega puts each mark's items as <path> children of a <g class="mark-<type> role-mark …">;
 * legends, axes and titles have other roles, so they are not counted.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

type Node = Record<string, unknown> & { ':@'?: Record<string, string> };

export function wellFormed(svg: string): true | string {
  const verdict = XMLValidator.validate(svg);
  return verdict === true ? true : `${verdict.err.code} at line ${verdict.err.line}: ${verdict.err.msg}`;
}

/** Count the <path> items of every data-mark group of the given Vega mark types. */
export function countDataMarks(svg: string, types: readonly string[] = ['symbol', 'rect']): number {
  const tree = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg) as Node[];
  let count = 0;
  const walk = (nodes: Node[]) => {
    for (const node of nodes) {
      const tag = Object.keys(node).find((k) => k !== ':@');
      if (!tag) continue;
      const children = (node[tag] as Node[] | undefined) ?? [];
      const classes = (node[':@']?.class ?? '').split(/\s+/);
      if (tag === 'g' && classes.includes('role-mark') && types.some((t) => classes.includes(`mark-${t}`))) {
        count += children.filter((c) => Object.keys(c).includes('path')).length;
      } else if (Array.isArray(children)) walk(children);
    }
  };
  walk(tree);
  return count;
}
