// rundirctl plot UID: a rundir's night as a picture, as systemd-analyze plot draws a boot: the
// lifecycle states over time as bands, and every event of the timeline as a mark with its name
// (warnings red, rescue steps blue, logind and systemd grey). One SVG, no script, no network,
// readable printed and on screen. Pure, given the timeline.
import type { TimelineEntry } from '../world/timeline.js';

const STATE_COLOUR: Record<string, string> = { absent: '#c8c8c8', starting: '#f2c14e', live: '#5aa469', closing: '#f08a24', stopping: '#d64545' };
const WARNINGS = new Set(['reliant-without-linger', 'rundir-closing-under-services', 'sockets-hidden-by-mount', 'rundir-purged-under-services', 'runtime-dir-missing']);

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function colourOf(event: string): string {
  if (WARNINGS.has(event)) return '#c62828';
  if (event.startsWith('rescue-')) return '#1565c0';
  if (event.startsWith('job-') || event.startsWith('user-')) return '#757575';
  return '#212121';
}

export interface PlotInput {
  uid: number;
  path: string;
  timeline: TimelineEntry[];
}

/** The SVG; `now` ends the last band; `stamp` writes a time as the rest of rundirctl does. */
export function plotSvg(t: PlotInput, now: Date, stamp: (iso: string) => string): string {
  const W = 1100;
  const left = 110;
  const right = 40;
  const entries = t.timeline.filter((e) => !Number.isNaN(Date.parse(e.at)));
  const t0 = entries.length ? Date.parse(entries[0]!.at) : now.getTime();
  const t1 = Math.max(now.getTime(), entries.length ? Date.parse(entries.at(-1)!.at) : t0, t0 + 1000);
  const x = (ms: number) => left + ((ms - t0) / (t1 - t0)) * (W - left - right);
  const marks = entries.filter((e) => !e.event.startsWith('state-'));
  // Room for the event names, written at 60 degrees below their marks.
  const H = 340;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`);
  out.push(`<title>${esc(`${t.path}: what happened, ${stamp(new Date(t0).toISOString())} to ${stamp(new Date(t1).toISOString())}`)}</title>`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="24" font-size="15" font-weight="bold">${esc(t.path)}</text>`);
  out.push(`<text x="${W - right}" y="24" text-anchor="end" fill="#616161">${esc(`${stamp(new Date(t0).toISOString())} to ${stamp(new Date(t1).toISOString())}`)}</text>`);
  // Legend of the states.
  let lx = left;
  for (const [state, colour] of Object.entries(STATE_COLOUR)) {
    out.push(`<rect x="${lx}" y="34" width="12" height="12" fill="${colour}"/><text x="${lx + 16}" y="44">${state}</text>`);
    lx += 90;
  }
  // The lifecycle, as bands: each state from its entry to the next one's.
  const bandY = 62;
  out.push(`<text x="10" y="${bandY + 19}" font-weight="bold">lifecycle</text>`);
  const states = entries.filter((e) => e.event.startsWith('state-'));
  states.forEach((e, i) => {
    const from = Date.parse(e.at);
    const to = i + 1 < states.length ? Date.parse(states[i + 1]!.at) : t1;
    const state = e.event.slice('state-'.length);
    const w = Math.max(1, x(to) - x(from));
    out.push(`<rect x="${x(from).toFixed(1)}" y="${bandY}" width="${w.toFixed(1)}" height="28" fill="${STATE_COLOUR[state] ?? '#999999'}"><title>${esc(`${stamp(e.at)} ${state}: ${e.detail}`)}</title></rect>`);
    if (w > 60) out.push(`<text x="${(x(from) + 4).toFixed(1)}" y="${bandY + 18}" fill="#ffffff">${esc(state)}</text>`);
  });
  // Every other event: a mark on the time line, its name beside it.
  const markY = 110;
  out.push(`<text x="10" y="${markY + 14}" font-weight="bold">events</text>`);
  out.push(`<line x1="${left}" y1="${markY + 10}" x2="${W - right}" y2="${markY + 10}" stroke="#9e9e9e"/>`);
  // Names of marks close together are set side by side along the line, not over each other.
  let lastX = -Infinity;
  let shift = 0;
  for (const e of marks) {
    const ex = x(Date.parse(e.at));
    shift = ex - lastX < 14 ? shift + 14 : 0;
    lastX = ex;
    const mx = ex.toFixed(1);
    const lx = (ex + shift).toFixed(1);
    const c = colourOf(e.event);
    out.push(`<g><title>${esc(`${stamp(e.at)} ${e.event}: ${e.detail}`)}</title><line x1="${mx}" y1="${markY}" x2="${mx}" y2="${markY + 20}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${lx}" y="${markY + 32}" fill="${c}" transform="rotate(60 ${lx} ${markY + 32})">${esc(e.event)}</text></g>`);
  }
  // The time axis: five ticks.
  const axisY = H - 30;
  out.push(`<line x1="${left}" y1="${axisY}" x2="${W - right}" y2="${axisY}" stroke="#424242"/>`);
  for (let i = 0; i <= 4; i++) {
    const ms = t0 + ((t1 - t0) * i) / 4;
    const tx = x(ms).toFixed(1);
    const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
    out.push(`<line x1="${tx}" y1="${axisY - 4}" x2="${tx}" y2="${axisY + 4}" stroke="#424242"/><text x="${tx}" y="${axisY + 18}" text-anchor="${anchor}">${esc(stamp(new Date(ms).toISOString()).slice(11))}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
