/**
 * A dictionary's feature map (UMAP of decoder directions, from `Dictionary.map`) as a canvas
 * scatter: wheel zooms about the pointer, drag pans, hovering shows the nearest feature's label and
 * density, a click opens it. Points are coloured by log10 density (features without statistics grey),
 * or by the score of a search (searchFeatures within the dictionary; features not among its hits
 * grey, drawn under the hits), with a legend for either.
 * A uniform grid over map coordinates finds the hovered point without scanning all of them.
 */
import { useEffect, useMemo, useRef, useState, type FormEvent, type MouseEvent } from 'react';
import { gql } from '../api.js';
import { MapPointsDocument, MapSearchDocument, type MapPointsQuery } from '../generated.js';
import { navigate, paths } from '../router.js';
import { int, num, percent } from '../format.js';

const PAGE = 10000;
const H = 420;
const HOVER_PX = 8;
/** Hits a map search colours: searchFeatures' largest page. */
const SEARCH_HITS = 100;
const GREY = '#b8bfc6';
const RAMP = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** A legend's colour sample. */
const SWATCH = { display: 'inline-block', width: 10, height: 10, verticalAlign: 'middle' } as const;

export interface MapData {
  bounds: { minX: number; maxX: number; minY: number; maxY: number };
  index: Int32Array;
  x: Float32Array;
  y: Float32Array;
  density: Float64Array;
  label: (string | null)[];
}

type PointPage = MapPointsQuery;
type PointNode = NonNullable<NonNullable<NonNullable<PointPage['dictionary']>['map']>['points']>['nodes'][number];

/** All points of the map, page by page; null when the dictionary has no map. */
export async function loadMap(
  dictionary: string,
  onProgress?: (done: number, total: number) => void,
): Promise<MapData | null> {
  let after: string | null = null;
  const nodes: PointNode[] = [];
  let bounds: MapData['bounds'] | undefined;
  for (;;) {
    const page: PointPage = await gql(MapPointsDocument, { id: dictionary, first: PAGE, after });
    const map = page.dictionary?.map;
    if (!map?.points) return null;
    bounds = map.bounds;
    nodes.push(...map.points.nodes);
    onProgress?.(nodes.length, map.points.totalCount);
    if (!map.points.pageInfo.hasNextPage) break;
    after = map.points.pageInfo.endCursor;
  }
  return {
    bounds: bounds!,
    index: Int32Array.from(nodes, (n) => n.index),
    x: Float32Array.from(nodes, (n) => n.x),
    y: Float32Array.from(nodes, (n) => n.y),
    density: Float64Array.from(nodes, (n) => n.feature.density ?? NaN),
    label: nodes.map((n) => n.feature.label),
  };
}

/** Viridis-like ramp for t in [0, 1]. */
function ramp(t: number): string {
  const stops = RAMP;
  const s = Math.min(stops.length - 1.001, Math.max(0, t * (stops.length - 1)));
  const i = Math.floor(s);
  const f = s - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** The scores of a search's hits by feature index. */
export interface MapScores {
  query: string;
  score: Map<number, number>;
}

/** A colour scale's gradient and what its ends mean. */
function Legend({ lo, hi, what, grey }: { lo: string; hi: string; what: string; grey: string }) {
  const gradient = `linear-gradient(to right, ${RAMP.map((c) => `rgb(${c.join(',')})`).join(', ')})`;
  return (
    <div className="mapLegend" data-testid="map-legend">
      <span>{what}</span> <span data-testid="legend-lo">{lo}</span>{' '}
      <span
        style={{ display: 'inline-block', width: 120, height: 10, background: gradient, verticalAlign: 'middle' }}
      />{' '}
      <span data-testid="legend-hi">{hi}</span> <span style={{ ...SWATCH, background: GREY }} /> {grey}
    </div>
  );
}

interface View {
  scale: number;
  tx: number;
  ty: number;
}

export function FeatureMapCanvas(props: {
  dictionary: string;
  data: MapData;
  highlight?: number | null;
  scores?: MapScores | null;
}) {
  const { dictionary, data, highlight, scores } = props;
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(800);
  const [view, setView] = useState<View>({ scale: 1, tx: 0, ty: 0 });
  const [hover, setHover] = useState<{ i: number; px: number; py: number } | null>(null);
  const drag = useRef<{ x: number; y: number; moved: boolean } | null>(null);
  const n = data.index.length;

  // Map coordinates → canvas pixels at scale 1, keeping the aspect ratio, with a margin.
  const base = useMemo(() => {
    const { minX, maxX, minY, maxY } = data.bounds;
    const pad = 12;
    const s = Math.min((width - 2 * pad) / Math.max(maxX - minX, 1e-9), (H - 2 * pad) / Math.max(maxY - minY, 1e-9));
    const ox = (width - s * (maxX - minX)) / 2;
    const oy = (H - s * (maxY - minY)) / 2;
    return { s, ox, oy, minX, minY };
  }, [data, width]);
  const toPx = (i: number): [number, number] => [
    (base.ox + (data.x[i] - base.minX) * base.s) * view.scale + view.tx,
    (base.oy + (data.y[i] - base.minY) * base.s) * view.scale + view.ty,
  ];

  // Colour per point, the drawing order (grey first, so hits stay visible) and the scale's ends.
  const colouring = useMemo(() => {
    const values = scores
      ? Array.from(data.index, (f) => scores.score.get(f) ?? NaN)
      : Array.from(data.density, (d) => (d > 0 ? Math.log10(d) : NaN));
    const finite = values.filter(Number.isFinite);
    const lo = finite.length ? Math.min(...finite) : 0;
    const hi = finite.length ? Math.max(...finite) : 1;
    const colours = values.map((v) => (Number.isFinite(v) ? ramp(hi > lo ? (v - lo) / (hi - lo) : 0.5) : GREY));
    const rank = values.map((v) => (Number.isFinite(v) ? v : -Number.MAX_VALUE));
    const order = Array.from(values.keys()).sort((i, j) => rank[i] - rank[j]);
    return { colours, order, lo, hi, coloured: finite.length };
  }, [data, scores]);

  // Grid of point indices over map coordinates for hover lookups.
  const grid = useMemo(() => {
    const cells = Math.max(8, Math.ceil(Math.sqrt(n / 4)));
    const { minX, maxX, minY, maxY } = data.bounds;
    const cw = Math.max(maxX - minX, 1e-9) / cells;
    const ch = Math.max(maxY - minY, 1e-9) / cells;
    const buckets: number[][] = Array.from({ length: cells * cells }, () => []);
    const clamp = (v: number) => Math.min(cells - 1, Math.max(0, Math.floor(v)));
    const cell = (x: number, y: number) => [clamp((x - minX) / cw), clamp((y - minY) / ch)];
    for (let i = 0; i < n; i++) {
      const [cx, cy] = cell(data.x[i], data.y[i]);
      buckets[cy * cells + cx].push(i);
    }
    return { cells, cw, ch, buckets, cell };
  }, [data, n]);

  useEffect(() => {
    const el = canvas.current?.parentElement;
    if (!el) return;
    const observer = new ResizeObserver(() => setWidth(Math.max(200, el.clientWidth)));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = width * dpr;
    c.height = H * dpr;
    const ctx = c.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, H);
    const r = Math.max(1.2, Math.min(4, 2.2 * Math.sqrt(view.scale) * Math.sqrt(2000 / Math.max(n, 1))));
    ctx.globalAlpha = 0.8;
    for (const i of colouring.order) {
      const [px, py] = toPx(i);
      if (px < -r || py < -r || px > width + r || py > H + r) continue;
      ctx.fillStyle = colouring.colours[i];
      ctx.fillRect(px - r / 2, py - r / 2, r, r);
    }
    ctx.globalAlpha = 1;
    for (const i of [
      hover?.i,
      highlight === undefined || highlight === null ? undefined : data.index.indexOf(highlight),
    ]) {
      if (i === undefined || i < 0) continue;
      const [px, py] = toPx(i);
      ctx.strokeStyle = '#d1242f';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(px, py, 6, 0, 2 * Math.PI);
      ctx.stroke();
    }
  });

  const pointAt = (px: number, py: number): number | null => {
    // Back to map coordinates, then search the cells within the hover radius.
    const mx = ((px - view.tx) / view.scale - base.ox) / base.s + base.minX;
    const my = ((py - view.ty) / view.scale - base.oy) / base.s + base.minY;
    const rad = HOVER_PX / (base.s * view.scale);
    const [x0, y0] = grid.cell(mx - rad, my - rad);
    const [x1, y1] = grid.cell(mx + rad, my + rad);
    let best: number | null = null;
    let bestD = HOVER_PX * HOVER_PX;
    for (let cy = y0; cy <= y1; cy++) {
      for (let cx = x0; cx <= x1; cx++) {
        for (const i of grid.buckets[cy * grid.cells + cx]) {
          const [qx, qy] = toPx(i);
          const d = (qx - px) ** 2 + (qy - py) ** 2;
          if (d <= bestD) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  };

  const local = (e: MouseEvent | globalThis.MouseEvent) => {
    const rect = canvas.current!.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  };
  // A native listener: React's wheel listeners are passive, and the page must not scroll while zooming.
  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const [px, py] = local(e);
      const k = Math.exp(-e.deltaY * 0.0015);
      setView((v) => {
        const scale = Math.min(200, Math.max(0.5, v.scale * k));
        const f = scale / v.scale;
        return { scale, tx: px - (px - v.tx) * f, ty: py - (py - v.ty) * f };
      });
    };
    c.addEventListener('wheel', onWheel, { passive: false });
    return () => c.removeEventListener('wheel', onWheel);
  }, []);
  const onMove = (e: MouseEvent<HTMLCanvasElement>) => {
    const [px, py] = local(e);
    if (drag.current) {
      const dx = px - drag.current.x;
      const dy = py - drag.current.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.current.moved = true;
      drag.current.x = px;
      drag.current.y = py;
      setView((v) => ({ ...v, tx: v.tx + dx, ty: v.ty + dy }));
      return;
    }
    const i = pointAt(px, py);
    setHover(i === null ? null : { i, px, py });
  };
  const onUp = () => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved && hover) navigate(paths.feature(dictionary, data.index[hover.i]));
  };

  return (
    <div className="featureMap">
      <canvas
        ref={canvas}
        data-testid="feature-map"
        style={{
          width: `${width}px`,
          height: `${H}px`,
          cursor: hover ? 'pointer' : drag.current ? 'grabbing' : 'grab',
        }}
        aria-label={`Map of ${int(n)} features: scroll to zoom, drag to pan, click a point to open its feature`}
        role="img"
        onMouseDown={(e) => {
          const [x, y] = local(e);
          drag.current = { x, y, moved: false };
        }}
        onMouseMove={onMove}
        onMouseUp={onUp}
        onMouseLeave={() => {
          drag.current = null;
          setHover(null);
        }}
      />
      {hover ? (
        <div
          className="mapTip"
          data-testid="map-tip"
          style={{ left: Math.min(hover.px + 12, width - 220), top: hover.py + 12 }}
        >
          <strong>#{data.index[hover.i]}</strong> {data.label[hover.i] ?? <span className="muted">no label</span>}
          <br />
          <span className="muted">
            density {percent(Number.isFinite(data.density[hover.i]) ? data.density[hover.i] : null)}
          </span>
          {scores ? <span className="muted"> · score {num(scores.score.get(data.index[hover.i]) ?? null)}</span> : null}
        </div>
      ) : null}
      <div className="mapFoot muted">
        {int(n)} features · colour: {scores ? `score for “${scores.query}”` : 'log density'} (grey:{' '}
        {scores ? 'not a hit' : 'not built'}) · scroll to zoom, drag to pan, click to open{' '}
        <button className="linkish" onClick={() => setView({ scale: 1, tx: 0, ty: 0 })}>
          reset view
        </button>
      </div>
      {scores ? (
        <Legend
          what={`score (${int(colouring.coloured)} hits)`}
          lo={num(colouring.lo)}
          hi={num(colouring.hi)}
          grey="not a hit"
        />
      ) : (
        <Legend what="density" lo={percent(10 ** colouring.lo)} hi={percent(10 ** colouring.hi)} grey="not built" />
      )}
    </div>
  );
}

/** Maps already loaded in this tab: paging the dictionary's table re-mounts the section. */
const loaded = new Map<string, Promise<MapData | null>>();

/** Loads and draws a dictionary's map, or says how to make one. */
export function FeatureMapSection({ dictionary, highlight }: { dictionary: string; highlight?: number | null }) {
  const [state, setState] = useState<{ data?: MapData | null; error?: string; done: number; total: number }>({
    done: 0,
    total: 0,
  });
  const [scores, setScores] = useState<MapScores | null>(null);
  useEffect(() => {
    let current = true;
    let promise = loaded.get(dictionary);
    if (!promise) {
      promise = loadMap(dictionary, (done, total) => current && setState((s) => ({ ...s, done, total })));
      loaded.set(dictionary, promise);
      promise.catch(() => loaded.delete(dictionary));
    }
    promise.then(
      (data) => current && setState((s) => ({ ...s, data })),
      (e: unknown) => current && setState((s) => ({ ...s, error: (e as Error).message })),
    );
    return () => {
      current = false;
    };
  }, [dictionary]);
  if (state.error) return <p className="error">Could not load the map: {state.error}</p>;
  if (state.data === undefined)
    return (
      <p className="loading">
        Loading the map… {state.total ? `${int(state.done)} of ${int(state.total)} points` : ''}
      </p>
    );
  if (state.data === null) {
    return (
      <p className="note">
        No map yet: run <code>atlas map {dictionary}</code> (or <code>atlas build</code>) to lay the features out.
      </p>
    );
  }
  return (
    <>
      <MapSearch dictionary={dictionary} onScores={setScores} />
      <FeatureMapCanvas dictionary={dictionary} data={state.data} highlight={highlight} scores={scores} />
    </>
  );
}

/** A search box whose hits (searchFeatures within the dictionary) colour the map; empty restores density. */
function MapSearch({ dictionary, onScores }: { dictionary: string; onScores: (s: MapScores | null) => void }) {
  const [text, setText] = useState('');
  const [state, setState] = useState<{ busy: boolean; error?: string }>({ busy: false });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const query = text.trim();
    if (!query) {
      onScores(null);
      return;
    }
    setState({ busy: true });
    try {
      const r = await gql(MapSearchDocument, { q: query, d: dictionary, first: SEARCH_HITS });
      onScores({ query, score: new Map((r.searchFeatures ?? []).map((h) => [h.feature.index, h.score])) });
      setState({ busy: false });
    } catch (err) {
      setState({ busy: false, error: (err as Error).message });
    }
  };
  return (
    <form className="toolbar" onSubmit={submit} data-testid="map-search">
      <input
        type="search"
        value={text}
        onChange={(e) => setText(e.target.value)}
        placeholder="Colour the map by a search (a text, a concept)"
        aria-label="Colour the map by a search"
      />
      <button type="submit" disabled={state.busy}>
        {state.busy ? 'Searching…' : 'Colour'}
      </button>
      {state.error ? <span className="error">{state.error}</span> : null}
    </form>
  );
}
