import type { ChaosReport } from './chaos.ts';

const COLOURS: Record<string, string> = { graceful: '#2f8f4e', sigkill: '#b5651d', 'no-hint-no-jitter': '#c0392b' };
const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A small hand-written SVG: reconnects per second seen by the surviving pods (trailing 1 s window)
 * against the time since the pod was ended, one line per scenario, the budget as a dashed line.
 */
export function renderChart(report: ChaosReport): string {
  const W = 760;
  const H = 360;
  const m = { left: 56, right: 200, top: 40, bottom: 44 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const budget = report.scenarios[0]?.budgetPerSecond ?? 0;
  const maxT = Math.max(1_000, ...report.scenarios.flatMap((s) => s.reconnectRate.map(([t]) => t)));
  const maxY = Math.max(budget * 1.2, ...report.scenarios.flatMap((s) => s.reconnectRate.map(([, c]) => c)), 1);
  const x = (t: number): number => m.left + (t / maxT) * plotW;
  const y = (v: number): number => m.top + plotH - (v / maxY) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${m.left}" y="22" font-size="14" font-weight="600">${escape(`Reconnects/s at surviving pods after a pod is ended (${report.size}, ${report.scenarios[0]?.clients ?? 0} clients)`)}</text>`);
  const yStep = niceStep(maxY / 5);
  for (let v = 0; v <= maxY; v += yStep) {
    parts.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e3e6ec"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#5b6475">${v}</text>`);
  }
  const tStep = niceStep(maxT / 8 / 1_000) * 1_000;
  for (let t = 0; t <= maxT; t += tStep) {
    parts.push(`<text x="${x(t)}" y="${m.top + plotH + 16}" text-anchor="middle" fill="#5b6475">${t / 1_000}</text>`);
  }
  parts.push(`<text x="${m.left + plotW / 2}" y="${H - 8}" text-anchor="middle" fill="#5b6475">seconds since SIGTERM / SIGKILL</text>`);
  parts.push(`<text x="14" y="${m.top + plotH / 2}" transform="rotate(-90 14 ${m.top + plotH / 2})" text-anchor="middle" fill="#5b6475">reconnects in the last second</text>`);
  parts.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${y(budget)}" y2="${y(budget)}" stroke="#333" stroke-dasharray="6 4"/>`);
  parts.push(`<text x="${m.left + plotW - 4}" y="${y(budget) - 6}" text-anchor="end">budget ${budget}/s</text>`);
  report.scenarios.forEach((s, i) => {
    const colour = COLOURS[s.name] ?? '#3465a4';
    const points = s.reconnectRate.map(([t, c]) => `${x(t).toFixed(1)},${y(c).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points}"/>`);
    const ly = m.top + 10 + i * 44;
    parts.push(`<line x1="${W - m.right + 16}" x2="${W - m.right + 40}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`);
    parts.push(`<text x="${W - m.right + 46}" y="${ly + 4}" font-weight="600">${escape(s.name)}</text>`);
    parts.push(
      `<text x="${W - m.right + 46}" y="${ly + 20}" fill="#5b6475">${escape(`peak ${s.peakReconnectsPerSecond}/s, lost ${s.delivery.lost}, dup ${s.delivery.duplicates}`)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function niceStep(raw: number): number {
  if (raw <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const f of [1, 2, 5, 10]) if (f * power >= raw) return f * power;
  return 10 * power;
}
