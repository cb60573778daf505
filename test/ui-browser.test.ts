/**
 * The browser UI end to end in headless Chromium against a real server with a small atlas: a tiny
 * random GPT-2, two dictionaries built over a short corpus with `atlas build`'s code, an API key.
 * Every page is checked for what a person would see, for script errors and for requests that leave
 * the server. Set ATLAS_UI_SCREENSHOTS=DIR to keep a screenshot of each page.
 */
import { describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startTestAtlas, useFixture, type TestAtlas } from './helpers/atlas-server.js';
import { browserUnavailable, launchBrowser, watchPage } from './helpers/browser.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { createApiKey } from '../src/app/keys.js';
import { EngineRegistry } from '../src/app/registry.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { startServer } from '../src/server.js';
import { createServices } from '../src/app/services.js';
import { loadConfig } from '../src/config.js';
import { ensureWebBuild } from '../web/ensure-build.js';
import { buildFeatureMap } from '../src/app/feature-map.js';

const HOOK = 'blocks.1.hook_resid_post';
const CORPUS = [
  'Once upon a time there was a little girl who loved her red ball.',
  'The dog ran to the park and played with a stick all day.',
  'Tom and Sue built a tall tower of blocks, then it fell down.',
  'The sun was warm, and the birds sang in the old green tree.',
  'Mom baked a cake with sugar and milk for the happy party.',
].join('\n');

/** Runs in the page (the source is sent over), so it may use only browser globals. */
const BACKGROUND = (el: unknown): string => (globalThis as any).getComputedStyle(el).backgroundColor;

describe('browser UI', () => {
  const files = tempDir('atlas-ui-');
  const screenshots = process.env.ATLAS_UI_SCREENSHOTS;
  let base = '';
  let apiKey = '';
  after(() => files.cleanup());

  interface UiFixture {
    atlas: TestAtlas;
    browser: Browser;
  }
  const withPage = useFixture<UiFixture>(
    'browser UI tests',
    async () => {
      const unavailable = browserUnavailable();
      if (unavailable) return { skip: unavailable };
      ensureWebBuild({ log: (l) => console.log(l) });
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      const corpus = join(files.dir, 'corpus.txt');
      writeFileSync(corpus, CORPUS);
      const started = await startTestAtlas('pglite', async (db, dataDir) => {
        await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
        for (const [id, architecture, seed] of [
          ['sae-a', 'topk', 1],
          ['sae-b', 'standard', 2],
        ] as const) {
          const fx = writeSaeFixture(join(files.dir, id), {
            format: 'saelens',
            architecture,
            dIn: 32,
            dSae: 128,
            k: 6,
            hookName: HOOK,
            seed,
          });
          await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id, dataDir });
        }
        const registry = new EngineRegistry({ dataDir, device: 'cpu', threads: 1 }, db);
        try {
          await buildDashboards(db, registry, { modelId: 'gpt2-tiny', corpus, context: 16 });
        } finally {
          await registry.close();
        }
        await buildFeatureMap(db, { dictionaryId: 'sae-a', session: { device: 'cpu', threads: 1 }, epochs: 100 });
        // Imported after the build: a dictionary as it looks before `atlas build`.
        const fresh = writeSaeFixture(join(files.dir, 'sae-c'), {
          format: 'saelens',
          architecture: 'standard',
          dIn: 32,
          dSae: 64,
          hookName: HOOK,
          seed: 3,
        });
        await importDictionary(db, { path: fresh.path, modelId: 'gpt2-tiny', id: 'sae-c', dataDir });
        apiKey = (await createApiKey(db, 'ui test')).key;
      });
      if ('skip' in started) return started;
      base = started.url.replace(/\/graphql$/, '');
      return { atlas: started, browser: await launchBrowser() };
    },
    async ({ atlas, browser }) => {
      await browser.close();
      await atlas.close();
    },
  );

  /** A fresh page per test; fails the test on script errors or requests off the server. */
  const test = (name: string, fn: (page: Page, a: TestAtlas) => Promise<void>) =>
    withPage(name, async ({ atlas, browser }) => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.setDefaultTimeout(20000);
      const watch = watchPage(page);
      try {
        await fn(page, atlas);
        assert.deepEqual(watch.problems, []);
      } finally {
        await page.close();
      }
    });

  const shot = async (page: Page, name: string) => {
    if (!screenshots) return;
    mkdirSync(screenshots, { recursive: true });
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  };

  /** The feature of sae-a with the highest max activation, which has examples and a histogram. */
  const strongestFeature = async (a: TestAtlas): Promise<number> => {
    const r = await a.gql(
      `{ dictionary(id: "sae-a") { features(first: 1, orderBy: MAX_ACTIVATION) { edges { node { index maxActivation ` +
        `} } } } }`,
    );
    const node = r.data.dictionary.features.edges[0].node;
    assert.ok(node.maxActivation > 0, 'atlas build computed statistics');
    return node.index;
  };

  test('the catalog lists models and dictionaries with their statistics', async (page) => {
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'Catalog' }).waitFor();
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'sae-a', exact: true }) });
    const cells = await row.locator('td').allInnerTexts();
    assert.equal(cells[1], HOOK);
    assert.equal(cells[2], '128');
    assert.equal(cells[3], 'topk (k=6)');
    // L0, dead fraction and explained variance come from atlas build; a TopK dictionary's L0 is k.
    assert.equal(cells[4], '6');
    assert.match(cells[5], /%$/);
    assert.match(cells[6], /%$/);
    assert.match(cells[7], /^[\d,]+ tokens$/);
    await shot(page, 'catalog');
    await row.getByRole('link', { name: 'sae-a' }).click();
    await page.waitForURL(`${base}/dictionary/sae-a`);
    await page.getByRole('heading', { name: 'sae-a' }).waitFor();
  });

  test('the dictionary page sorts and pages through features', async (page) => {
    await page.goto(`${base}/dictionary/sae-a`);
    const rows = page.locator('[data-testid=features] tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 50);
    assert.equal(await rows.first().locator('td').first().innerText(), '#0');
    await shot(page, 'dictionary');

    await page.getByRole('button', { name: /^Density/ }).click();
    await page.waitForURL(/order=density/);
    await page.getByText('Features 1–50 of 128').waitFor();
    const densities = async () =>
      (await page.locator('[data-testid=features] tbody tr td:nth-child(2)').allInnerTexts()).map((s) => parseFloat(s));
    const first = await densities();
    assert.deepEqual(
      first,
      [...first].sort((x, y) => y - x),
      'densest first',
    );

    await page.getByRole('button', { name: 'Next' }).click();
    await page.waitForURL(/after=/);
    await page.getByText('Features 51–100 of 128').waitFor();
    const second = await densities();
    assert.ok(second[0] <= first[first.length - 1], 'the next page continues the order');
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.getByText('Features 1–50 of 128').waitFor();
    assert.deepEqual(await densities(), first);
  });

  test('search from the dictionary page lists features with reasons and links to them', async (page) => {
    await page.goto(`${base}/dictionary/sae-a`);
    const box = page.getByRole('searchbox', { name: 'Search features' });
    await box.fill('the little dog');
    await box.press('Enter');
    await page.waitForURL(/q=the\+little\+dog|q=the%20little%20dog/);
    const hits = page.locator('[data-testid=search-results] tbody tr');
    await hits.first().waitFor();
    assert.ok((await hits.count()) > 0);
    assert.match(await hits.first().innerText(), /activation/);
    await shot(page, 'search');
    const link = hits.first().getByRole('link');
    const index = (await link.innerText()).slice(1);
    await link.click();
    await page.waitForURL(`${base}/feature/sae-a/${index}`);
    await page.getByRole('heading', { name: `Feature #${index}` }).waitFor();
  });

  test('a feature page draws the histogram, shaded contexts, bands, logit lens and neighbours', async (page, a) => {
    const index = await strongestFeature(a);
    await page.goto(`${base}/feature/sae-a/${index}`);
    await page.getByRole('heading', { name: new RegExp(`^Feature #${index}`) }).waitFor();

    const bars = page.locator('[data-testid=histogram] rect.bar');
    await bars.first().waitFor();
    const heights = await bars.evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('height'))));
    assert.ok(
      heights.some((h) => h > 0),
      'some histogram bar has a height',
    );

    const active = page.locator('[data-testid=top-activations] .tok.active');
    assert.ok((await active.count()) > 0, 'top contexts have active tokens');
    const style = await active.first().evaluate((el) => ({
      bg: (globalThis as any).getComputedStyle(el).backgroundColor as string,
      title: el.getAttribute('title') ?? '',
    }));
    assert.match(style.bg, /^rgba\(234, 88, 12, 0\.\d+\)$/, 'active tokens are shaded');
    assert.match(style.title, /: \d/, 'the value shows on hover');
    const peak = await page
      .locator('[data-testid=top-activations] li')
      .first()
      .locator('.tok.peak')
      .evaluate(BACKGROUND);
    assert.equal(peak, 'rgba(234, 88, 12, 0.9)', 'the top context peaks at the feature maximum');

    assert.ok((await page.locator('[data-testid=quantile-band]').count()) > 0, 'quantile bands are shown');
    assert.ok((await page.locator('.logitList.pos li').count()) > 0, 'promoted tokens are listed');
    await shot(page, 'feature');

    const nearest = page.locator('[data-testid=nearest]');
    const other = nearest.getByRole('link', { name: /^sae-b #\d+$/ }).first();
    await other.waitFor();
    const target = (await other.innerText()).split('#')[1];
    await other.click();
    await page.waitForURL(`${base}/feature/sae-b/${target}`);
    await page.getByRole('heading', { name: new RegExp(`^Feature #${target}`) }).waitFor();
    assert.match(await page.locator('.crumbs').innerText(), /sae-b/);
  });

  /** The server's own greedy completion for these interventions, to compare the panel with. */
  const completion = async (a: TestAtlas, prompt: string, steering: unknown[]) => {
    const r = await a.gql(
      `query($p: String!, $s: [SteeringInput!]) { generate(model: "gpt2-tiny", prompt: $p, maxTokens: 32, ` +
        `steering: $s) { text default { text } } }`,
      { p: prompt, s: steering },
    );
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data.generate;
  };

  test('the feature page steers generation: steered and default completions side by side', async (page, a) => {
    const index = await strongestFeature(a);
    await page.goto(`${base}/feature/sae-a/${index}`);
    await page.getByRole('heading', { name: 'Steer' }).waitFor();
    const panel = page.locator('[data-testid=steer]');
    await panel.getByLabel('Prompt').fill('the dog ran');
    await panel.getByRole('slider', { name: 'Strength' }).fill('8');
    await panel.getByLabel('Method').selectOption('ADD');
    await panel.getByRole('button', { name: 'Generate' }).click();
    await panel.locator('[data-testid=steer-done]').waitFor({ state: 'attached' });
    const want = await completion(a, 'the dog ran', [{ dictionary: 'sae-a', index, strength: 8, method: 'ADD' }]);
    assert.equal(await panel.getByTestId('steered-text').innerText(), `the dog ran${want.text}`);
    assert.equal(await panel.getByTestId('default-text').innerText(), `the dog ran${want.default.text}`);
    await shot(page, 'feature-steer');
  });

  test('the playground steers with several features at once', async (page, a) => {
    await page.goto(`${base}/playground`);
    const panel = page.locator('[data-testid=steer]');
    await panel.getByLabel('Prompt').fill('the sun');
    await panel.getByRole('button', { name: 'Add a feature' }).click();
    const rows = panel.getByTestId('steer-row');
    await rows.nth(0).getByLabel('Steering SAE').selectOption('sae-a');
    await rows.nth(0).getByLabel('Feature index').fill('3');
    await rows.nth(0).getByLabel('Strength').fill('6');
    await rows.nth(1).getByLabel('Steering SAE').selectOption('sae-b');
    await rows.nth(1).getByLabel('Feature index').fill('9');
    await rows.nth(1).getByLabel('Strength').fill('2');
    await rows.nth(1).getByLabel('Method').selectOption('CLAMP');
    await panel.getByRole('button', { name: 'Generate' }).click();
    await panel.locator('[data-testid=steer-done]').waitFor({ state: 'attached' });
    const want = await completion(a, 'the sun', [
      { dictionary: 'sae-a', index: 3, strength: 6, method: 'ADD' },
      { dictionary: 'sae-b', index: 9, strength: 2, method: 'CLAMP' },
    ]);
    assert.equal(await panel.getByTestId('steered-text').innerText(), `the sun${want.text}`);
    assert.equal(await panel.getByTestId('default-text').innerText(), `the sun${want.default.text}`);
    await shot(page, 'playground-steer');
  });

  test('with an API key set, an explanation can be added from the feature page', async (page, a) => {
    await page.goto(`${base}/feature/sae-a/5`);
    await page.getByText('Set an API key (top right) to add an explanation.').waitFor();
    await page.getByRole('button', { name: 'Set API key' }).click();
    await page.getByLabel('API key').fill(apiKey);
    await page.getByRole('button', { name: 'Save' }).click();
    const text = `fires on "quotes" & <tags>; DROP TABLE features; --`;
    await page.getByLabel('New explanation').fill(text);
    await page.getByRole('button', { name: 'Add explanation' }).click();
    await page.locator('[data-testid=explanations] li', { hasText: text }).waitFor();
    const r = await a.gql(`{ feature(dictionary: "sae-a", index: 5) { explanations { text author } } }`);
    assert.deepEqual(r.data.feature.explanations, [{ text, author: 'ui test' }]);
    await shot(page, 'feature-explained');
  });

  test('the playground shades tokens; a token lists its features; a feature opens its page', async (page) => {
    await page.goto(`${base}/playground`);
    await page.getByLabel('Text to encode').fill('The little dog played with a red ball.');
    await page.getByLabel('Dictionary').selectOption('sae-a');
    await page.getByRole('button', { name: 'Encode' }).click();
    await page.waitForURL(/\/playground\?dictionary=sae-a&text=/);
    const tokens = page.locator('[data-testid=playground-tokens] button');
    await tokens.first().waitFor();
    assert.equal((await tokens.allInnerTexts()).join(''), 'The little dog played with a red ball.');
    const shaded = await tokens.evaluateAll(
      (ts) =>
        ts.filter((t) => (globalThis as any).getComputedStyle(t).backgroundColor.startsWith('rgba(234, 88, 12')).length,
    );
    assert.ok(shaded > 0, 'tokens are shaded by their strongest feature');

    await tokens.nth(2).click();
    const features = page.locator('[data-testid=token-features] li a');
    await features.first().waitFor();
    assert.equal(await features.count(), 6, 'a TopK-6 dictionary has 6 active features per token');
    await shot(page, 'playground');
    const index = (await features.first().innerText()).slice(1);
    await features.first().click();
    await page.waitForURL(`${base}/feature/sae-a/${index}`);
    await page.getByRole('heading', { name: new RegExp(`^Feature #${index}`) }).waitFor();

    // Back returns to the same encoding, rerun from the URL.
    await page.goBack();
    await tokens.first().waitFor();
    assert.equal((await tokens.allInnerTexts()).join(''), 'The little dog played with a red ball.');
  });

  test('a dictionary not built yet says what is missing instead of drawing empty charts', async (page) => {
    await page.goto(`${base}/`);
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'sae-c', exact: true }) });
    await row.waitFor();
    assert.deepEqual((await row.locator('td').allInnerTexts()).slice(4), ['—', '—', '—', '—']);
    await page.getByText('have no statistics yet: run atlas build over a corpus.').waitFor();
    await page.goto(`${base}/feature/sae-c/1`);
    await page.getByText(/No statistics yet: run atlas build sae-c/).waitFor();
    assert.equal(await page.locator('[data-testid=histogram]').count(), 0);
    assert.ok(
      (await page.getByText('Not computed yet.').count()) >= 2,
      'histogram and examples say they are not computed',
    );
    await shot(page, 'feature-unbuilt');
  });

  test(
    'the map opens the feature under the pointer; comparing two dictionaries links features both ' + 'ways',
    async (page) => {
      await page.goto(`${base}/dictionary/sae-a`);
      const map = page.locator('[data-testid=feature-map]');
      await map.waitFor();
      await page.getByText('128 features · colour: log density').waitFor();
      // Sweep the pointer over the map until a point is under it, then open that feature.
      const box = (await map.boundingBox())!;
      const tip = page.locator('[data-testid=map-tip]');
      let found = false;
      for (let y = box.y + 10; y < box.y + box.height - 10 && !found; y += 12) {
        for (let x = box.x + box.width / 2 - 200; x < box.x + box.width / 2 + 200 && !found; x += 6) {
          await page.mouse.move(x, y);
          found = (await tip.count()) > 0;
        }
      }
      assert.ok(found, 'a hover shows a feature');
      const index = (await tip.locator('strong').innerText()).slice(1);
      await page.mouse.down();
      await page.mouse.up();
      await page.waitForURL(`${base}/feature/sae-a/${index}`);
      await shot(page, 'map');

      await page.goto(`${base}/compare?a=sae-a&b=sae-b`);
      await page.locator('[data-testid=compare-stats]').waitFor();
      assert.equal(await page.locator('[data-testid=histogram]').count(), 1);
      const best = page.locator('[data-testid=matches-best] tbody tr');
      assert.equal(await best.count(), 15);
      assert.equal(await page.locator('[data-testid=matches-worst] tbody tr').count(), 15);
      await shot(page, 'compare');
      const link = best.first().locator('td').nth(1).getByRole('link');
      const target = (await link.innerText()).slice(1);
      await link.click();
      await page.waitForURL(`${base}/feature/sae-b/${target}`);
      const related = page.locator('[data-testid=related] tbody tr');
      await related.first().waitFor();
      assert.equal(await related.first().locator('td').first().innerText(), 'sae-a');
    },
  );

  test('a search colours the dictionary map by score, with a legend', async (page, a) => {
    const query = 'the dog ran to the park';
    const r = await a.gql(
      `query($q: String!) { searchFeatures(query: $q, dictionary: "sae-a", first: 100) { score } }`,
      { q: query },
    );
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const scores = (r.data.searchFeatures as { score: number }[]).map((h) => h.score);
    assert.ok(scores.length > 0);
    await page.goto(`${base}/dictionary/sae-a`);
    await page.locator('[data-testid=feature-map]').waitFor();
    await page.getByText('density', { exact: true }).waitFor();
    await page.getByLabel('Colour the map by a search').fill(query);
    await page.getByRole('button', { name: 'Colour' }).click();
    await page.getByText(`score (${scores.length} hits)`).waitFor();
    await page.getByText(`colour: score for “${query}”`).waitFor();
    const near = (text: string, want: number) =>
      Math.abs(parseFloat(text) - want) <= 5e-3 * Math.max(1, Math.abs(want));
    assert.ok(near(await page.getByTestId('legend-lo').innerText(), Math.min(...scores)), 'legend low end');
    assert.ok(near(await page.getByTestId('legend-hi').innerText(), Math.max(...scores)), 'legend high end');
    await shot(page, 'map-search');
    // An empty search goes back to density.
    await page.getByLabel('Colour the map by a search').fill('');
    await page.getByRole('button', { name: 'Colour' }).click();
    await page.getByText('density', { exact: true }).waitFor();
  });

  test('URLs are shareable: pages load directly, unknown ones say so, errors are shown in words', async (page) => {
    await page.goto(`${base}/playground?dictionary=sae-b&text=${encodeURIComponent('hello there')}`);
    await page.locator('[data-testid=playground-tokens] button').first().waitFor();
    assert.equal(await page.getByLabel('Dictionary').inputValue(), 'sae-b');

    await page.goto(`${base}/feature/sae-a/999`);
    await page.getByRole('alert').waitFor();
    assert.match(await page.getByRole('alert').innerText(), /Could not load feature 999 of sae-a/);

    await page.goto(`${base}/dictionary/nope`);
    assert.match(await page.getByRole('alert').innerText(), /nope/);

    const missing = await page.goto(`${base}/no/such/page`);
    assert.equal(missing?.status(), 404);
    const asset = await fetch(`${base}/assets/..%2F..%2Fpackage.json`);
    assert.equal(asset.status, 404);
  });

  test('on a server that requires a key for reads, the UI says so and loads once a key is set', async (page, a) => {
    // A second server over the same database, as `ATLAS_REQUIRE_KEY=1 atlas serve` would run.
    const config = { ...loadConfig({}), device: 'cpu' as const, dataDir: files.dir, requireKey: true };
    const services = await createServices(config, a.database);
    const locked = await startServer(
      { database: a.database, services, maxBodyBytes: config.maxBodyBytes, log: () => undefined },
      { port: 0, host: '127.0.0.1' },
    );
    try {
      const lockedBase = locked.url.replace(/\/graphql$/, '');
      await page.goto(`${lockedBase}/`);
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.innerText(), /Could not load the catalog\..*UNAUTHENTICATED/s);
      await page.getByRole('button', { name: 'Set API key' }).click();
      await page.getByLabel('API key').fill(apiKey);
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('heading', { name: 'tiny gpt2' }).waitFor();
      assert.equal(await page.getByRole('alert').count(), 0);
    } finally {
      await locked.stop();
      await services.close();
    }
  });

  test('GraphiQL is served from the bundle and runs queries', async (page) => {
    await page.goto(`${base}/graphiql`);
    await page.locator('.graphiql-container').waitFor();
    // The editor loads its default query asynchronously; running before that runs nothing.
    await page.locator('.graphiql-query-editor').getByText('hookPoint').first().waitFor();
    await page.locator('.graphiql-execute-button').click();
    await page.locator('.graphiql-response').getByText('"sae-a"').first().waitFor();
    // The Docs pane needs the introspection query to pass the server's query limits.
    await page.getByRole('button', { name: /documentation explorer/i }).click();
    await page.locator('.graphiql-doc-explorer').getByText('Root Types').waitFor();
    await shot(page, 'graphiql');
  });
});
