/**
 * Charts with uPlot: sparklines for the live figures, and time-series charts for the views. Each
 * chart is wrapped in a `role="img"` element whose label summarizes what it shows; the numbers are
 * also in a table (the views add it).
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom.ts';
import { tickLabel } from './format.ts';

export const PALETTE = ['#4f46e5', '#0891b2', '#d97706', '#db2777', '#16a34a', '#7c3aed', '#dc2626', '#475569', '#0d9488'];

function watchWidth(el: HTMLElement, onWidth: (w: number) => void): ResizeObserver {
  const ro = new ResizeObserver((entries) => {
    const w = Math.floor(entries[0]?.contentRect.width ?? 0);
    if (w > 0) onWidth(w);
  });
  ro.observe(el);
  return ro;
}

/** A small line with no axes, for a live figure. */
export class Sparkline {
  readonly el: HTMLElement;
  private plot: uPlot | undefined;
  private readonly color: string;
  private readonly ro: ResizeObserver;
  private width = 0;
  private data: uPlot.AlignedData = [[], []];

  private readonly dots: boolean;

  /** `dots`: mark each value (for ratios, whose hours without a denominator are gaps). */
  constructor(color: string, label: string, dots = false) {
    this.color = color;
    this.dots = dots;
    this.el = h('div', { class: 'spark', role: 'img', 'aria-label': label });
    this.ro = watchWidth(this.el, (w) => {
      this.width = w;
      if (this.plot) this.plot.setSize({ width: w, height: 40 });
      else this.draw();
    });
  }

  set(xs: number[], ys: Array<number | null>, label: string): void {
    this.data = [xs.map((x) => x / 1000), ys];
    this.el.setAttribute('aria-label', label);
    if (this.plot) this.plot.setData(this.data);
    else this.draw();
  }

  private draw(): void {
    if (this.width === 0 || this.data[0].length === 0) return;
    this.plot = new uPlot(
      {
        width: this.width,
        height: 40,
        pxAlign: false,
        cursor: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        legend: { show: false },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: this.color, width: 2, fill: `${this.color}22`, spanGaps: this.dots, points: { show: this.dots, size: 5, fill: this.color, stroke: this.color } }],
      },
      this.data,
      this.el,
    );
  }

  destroy(): void {
    this.ro.disconnect();
    this.plot?.destroy();
  }
}

export interface SeriesSpec {
  label: string;
  color?: string;
  /** Draw on the right-hand axis (a ratio next to counts). */
  right?: boolean;
  fill?: boolean;
  dash?: boolean;
}

/** A time-series chart with axes in the shop's time zone, a legend and a cursor. */
export class TimeChart {
  readonly el: HTMLElement;
  private readonly plotEl: HTMLElement;
  private plot: uPlot | undefined;
  private readonly ro: ResizeObserver;
  private width = 0;
  private readonly height: number;
  private key = '';
  private specs: SeriesSpec[] = [];
  private data: uPlot.AlignedData = [[]];
  private readonly timeZone: string;
  private readonly format: (v: number) => string;
  private readonly formatRight: (v: number) => string;

  private readonly legendLive: boolean;
  private bars = false;

  constructor(o: { label: string; timeZone: string; height?: number; format: (v: number) => string; formatRight?: (v: number) => string; legendLive?: boolean }) {
    this.legendLive = o.legendLive ?? true;
    this.timeZone = o.timeZone;
    this.height = o.height ?? 280;
    this.format = o.format;
    this.formatRight = o.formatRight ?? o.format;
    this.plotEl = h('div', { class: 'plot' });
    this.el = h('figure', { class: 'chart', role: 'img', 'aria-label': o.label }, this.plotEl);
    this.ro = watchWidth(this.el, (w) => {
      this.width = w;
      if (this.plot) this.plot.setSize({ width: w, height: this.height });
      else this.draw();
    });
  }

  /** `xs` in ms; one array of values per series. Rebuilds the chart when the series change. `bars`: one bar per bucket (days). */
  set(xs: number[], series: SeriesSpec[], values: Array<Array<number | null>>, label: string, bars = false): void {
    this.el.setAttribute('aria-label', label);
    this.data = [xs.map((x) => x / 1000), ...values];
    const key = JSON.stringify([series, bars, xs.length > 0 ? xs[xs.length - 1]! - xs[0]! > 36 * 3_600_000 : false]);
    this.bars = bars;
    if (this.plot && key === this.key) {
      this.plot.setData(this.data);
      return;
    }
    this.key = key;
    this.specs = series;
    this.plot?.destroy();
    this.plot = undefined;
    this.draw();
  }

  private draw(): void {
    if (this.width === 0 || this.specs.length === 0) return;
    const tz = this.timeZone;
    const hasRight = this.specs.some((s) => s.right);
    const fmt = this.format;
    const fmtRight = this.formatRight;
    const xs = this.data[0] as number[];
    const span = xs.length > 1 ? (xs[xs.length - 1]! - xs[0]!) * 1000 : 0;
    const step = xs.length > 1 ? xs[1]! - xs[0]! : 3600;
    const bars = this.bars;
    const opts: uPlot.Options = {
      width: this.width,
      height: this.height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      cursor: { drag: { x: false, y: false } },
      legend: { live: this.legendLive },
      scales: {
        x: { time: true, ...(bars && { range: (_u: uPlot, min: number, max: number): uPlot.Range.MinMax => [min - step / 2, max + step / 2] }) },
        y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] },
        ...(hasRight && { r: { range: (_u: uPlot, _min: number, max: number): uPlot.Range.MinMax => [0, Math.max(max * 1.1, 0.01)] } }),
      },
      axes: [
        {
          stroke: '#64748b',
          grid: { stroke: '#e2e8f0', width: 1 },
          ticks: { stroke: '#e2e8f0' },
          space: 64,
          // Day bars: a tick under bars, thinned to fit; otherwise uPlot's local-time ticks.
          ...(bars && {
            splits: (u: uPlot) => {
              const d = u.data[0] as number[];
              const every = Math.max(1, Math.ceil(d.length / Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / 64))));
              return d.filter((_x, i) => i % every === 0);
            },
          }),
          values: (_u: uPlot, ticks: number[]) => ticks.map((t) => tickLabel(t * 1000, tz, span)),
        },
        { stroke: '#64748b', grid: { stroke: '#e2e8f0', width: 1 }, ticks: { show: false }, size: 64, values: (_u, ticks) => ticks.map((t) => fmt(t)) },
        ...(hasRight ? [{ scale: 'r', side: 1 as const, stroke: '#64748b', grid: { show: false }, ticks: { show: false }, size: 56, values: (_u: uPlot, ticks: number[]) => ticks.map((t) => fmtRight(t)) }] : []),
      ],
      series: [
        {},
        ...this.specs.map((s, i) => {
          const color = s.color ?? PALETTE[i % PALETTE.length]!;
          return {
            label: s.label,
            stroke: color,
            width: 2,
            scale: s.right ? 'r' : 'y',
            ...(s.fill && { fill: `${color}26` }),
            ...(s.dash && { dash: [6, 4] }),
            ...(bars && !s.right && { paths: uPlot.paths.bars!({ size: [0.7, 48] }), fill: `${color}cc` }),
            points: { show: false },
            value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : s.right ? fmtRight(v) : fmt(v)),
          };
        }),
      ],
    };
    this.plot = new uPlot(opts, this.data, this.plotEl);
  }

  destroy(): void {
    this.ro.disconnect();
    this.plot?.destroy();
  }
}
