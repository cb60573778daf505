/**
 * Headless Debian Chromium driven by playwright-core (playwright's own browser download cannot
 * work here). Tests skip with a notice when the browser is absent; `.ci/run` installs it.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.ATLAS_CHROMIUM ?? '/usr/bin/chromium';

/** Why browser tests cannot run here, or null when they can. */
export function browserUnavailable(): string | null {
  return existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set ATLAS_CHROMIUM)`;
}

/** Playwright gives every launch a fresh temporary profile; the flags keep Chromium off the network. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Watches a page for what a person would call broken: uncaught script errors and requests that
 * leave this machine (the UI must load nothing from the network).
 */
export function watchPage(page: Page): { problems: string[] } {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('request', (r) => {
    const url = new URL(r.url());
    const local =
      url.protocol === 'data:' ||
      url.protocol === 'blob:' ||
      url.hostname === '127.0.0.1' ||
      url.hostname === 'localhost';
    if (!local) problems.push(`request off this machine: ${r.url()}`);
  });
  return { problems };
}
