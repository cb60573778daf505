/**
 * The feature map places planted clusters of decoder directions apart: every point's nearest
 * neighbours on the map come from its own cluster, and each cluster's spread on the map is small
 * next to the distance between cluster centres. The same seed gives the same map.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutDecoders } from '../src/engine/map/layout.js';
import { smoothKnn, fuzzyGraph } from '../src/engine/map/umap.js';
import { rng } from './helpers/rng.js';
import { plantedClusters } from './helpers/planted-dictionaries.js';

const session = { device: 'cpu' as const, threads: 1 };

test('planted clusters land apart on the map, and the layout is seeded', async () => {
  const d = 32,
    n = 240,
    clusters = 4;
  const { rows, label } = plantedClusters(11, n, d, clusters, 0.4);
  const phases = new Set<string>();
  const map = await layoutDecoders(rows, d, { session, seed: 3, epochs: 150, onProgress: (p) => phases.add(p) });
  assert.deepEqual([...phases], ['neighbours', 'layout']);
  const xy = (i: number) => [map.points[2 * i], map.points[2 * i + 1]];
  // 5 nearest map neighbours of every point share its cluster.
  let same = 0;
  for (let i = 0; i < n; i++) {
    const [x, y] = xy(i);
    const near = Array.from({ length: n }, (_, j) => j)
      .filter((j) => j !== i)
      .sort((p, q) => Math.hypot(xy(p)[0] - x, xy(p)[1] - y) - Math.hypot(xy(q)[0] - x, xy(q)[1] - y))
      .slice(0, 5);
    same += near.filter((j) => label[j] === label[i]).length;
  }
  assert.equal(same, 5 * n);
  // Cluster radius (RMS distance to its centroid) well below the closest pair of centroids.
  const centroids = Array.from({ length: clusters }, (_, c) => {
    const members = label.flatMap((l, i) => (l === c ? [xy(i)] : []));
    return [
      members.reduce((s, p) => s + p[0], 0) / members.length,
      members.reduce((s, p) => s + p[1], 0) / members.length,
    ];
  });
  const radius = Math.max(
    ...centroids.map((cen, c) => {
      const members = label.flatMap((l, i) => (l === c ? [xy(i)] : []));
      return Math.sqrt(members.reduce((s, p) => s + (p[0] - cen[0]) ** 2 + (p[1] - cen[1]) ** 2, 0) / members.length);
    }),
  );
  let gap = Infinity;
  for (let a = 0; a < clusters; a++)
    for (let b = a + 1; b < clusters; b++)
      gap = Math.min(gap, Math.hypot(centroids[a][0] - centroids[b][0], centroids[a][1] - centroids[b][1]));
  assert.ok(gap > 3 * radius, `closest clusters ${gap.toFixed(2)} apart, radius ${radius.toFixed(2)}`);
  for (let i = 0; i < n; i++) {
    assert.ok(map.points[2 * i] >= map.bounds.minX && map.points[2 * i] <= map.bounds.maxX);
    assert.ok(map.points[2 * i + 1] >= map.bounds.minY && map.points[2 * i + 1] <= map.bounds.maxY);
  }
  const again = await layoutDecoders(rows, d, { session, seed: 3, epochs: 150 });
  assert.deepEqual(again.points, map.points);
});

test("UMAP memberships: each point's σ gives log2 k total membership, and the graph is the fuzzy union", () => {
  const n = 20,
    k = 6;
  const rand = rng(4);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: k }, () => rand()).sort((x, y) => x - y);
    if (i === 0) row[0] = 0; // a duplicate point: ρ is the first positive distance
    distances.set(row, i * k);
  }
  const { rho, sigma } = smoothKnn(distances, n, k);
  for (let i = 0; i < n; i++) {
    const row = Array.from(distances.subarray(i * k, (i + 1) * k));
    assert.equal(
      rho[i],
      row.find((d) => d > 0),
    );
    const total = row.reduce((s, d) => s + Math.exp(-Math.max(0, d - rho[i]) / sigma[i]), 0);
    assert.ok(Math.abs(total - Math.log2(k)) < 1e-4, `point ${i}: ${total}`);
  }
  // Four points; nobody lists 3 as a neighbour, so its edges come from one direction only.
  const idx = Int32Array.from([1, 2, 0, 2, 0, 1, 0, 1]);
  const dist = Float32Array.from([0.1, 0.5, 0.1, 0.4, 0.3, 0.6, 0.2, 0.7]);
  const g = fuzzyGraph(idx, dist, 4, 2);
  const s2 = smoothKnn(dist, 4, 2);
  const directed = new Map<string, number>();
  for (let i = 0; i < 4; i++) {
    for (let t = 0; t < 2; t++)
      directed.set(`${i}>${idx[i * 2 + t]}`, Math.exp(-Math.max(0, dist[i * 2 + t] - s2.rho[i]) / s2.sigma[i]));
  }
  const got = new Map<string, number>();
  for (let e = 0; e < g.head.length; e++) got.set(`${g.head[e]}>${g.tail[e]}`, g.weight[e]);
  assert.equal(g.head.length, 10);
  assert.deepEqual([...got.keys()].sort(), ['0>1', '0>2', '0>3', '1>0', '1>2', '1>3', '2>0', '2>1', '3>0', '3>1']);
  for (const [key, v] of got) {
    const [i, j] = key.split('>');
    const a = directed.get(`${i}>${j}`) ?? 0,
      b = directed.get(`${j}>${i}`) ?? 0;
    assert.ok(Math.abs(v - (a + b - a * b)) < 1e-12, key);
  }
});
