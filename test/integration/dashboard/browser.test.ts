// The dashboard in a real browser (Debian's Chromium driven by playwright-core): it logs in with
// ?token= once, then follows a breaker through the proxy as it happens — CLOSED, OPEN after the
// upstream fails, HALF_OPEN and CLOSED again once the upstream is healthy and probes succeed — and
// shows per-route totals, including requests a limit rejected. Its reset button closes a breaker,
// while a page served from the data port (same site, so the session cookie rides along) cannot. The
// clock is manual, so the breaker's timeout passes when the test says so; the page is waited on with
// bounded locator waits.
//
// Skips only when Chromium is not installed AND CI is unset; in CI a missing browser fails the test.
import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { PROJECT_ROOT, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const runnable = existsSync(CHROMIUM) || Boolean(process.env.CI);
const TOKEN = 'dashboard-test-token';
const UI_TIMEOUT_MS = 10_000;

async function hit(url: string): Promise<number> {
  const r = await request(url);
  await r.body.dump();
  return r.statusCode;
}

describe.skipIf(!runnable)('dashboard in Chromium', () => {
  const clock = new ManualClock(Date.UTC(2026, 1, 21, 10, 0, 0));
  let upstream: TestUpstream;
  let p: TestProxy;
  let browser: Browser;
  let page: Page;

  const breakerRow = (state: string) => page.locator(`tr[data-breaker="transcriber"][data-state="${state}"]`);
  const routeCell = (route: string, field: string) =>
    page.locator(`tr[data-route="${route}"] td[data-field="${field}"]`);

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(
      {
        version: 1,
        admin: { token: TOKEN },
        upstreams: {
          transcriber: {
            url: upstream.url,
            breaker: { failure_threshold: 3, success_threshold: 2, timeout: '30s', half_open_max_calls: 2 },
          },
        },
        routes: [
          { name: 'transcribe', match: { path: '/transcribe', methods: ['POST'] }, upstream: 'transcriber' },
          { name: 'status', match: { path: '/status/*' }, upstream: 'transcriber', limits: { hourly: 1000 } },
          { name: 'result', match: { path: '/result/*' }, upstream: 'transcriber', limits: { hourly: 3 } },
        ],
      },
      { clock },
    );
    // playwright gives every launch a fresh, empty profile of its own.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        '--no-first-run',
      ],
    });
    // A context of our own: the hostile page below opens in it, with the same cookies.
    const context = await browser.newContext({ viewport: { width: 1280, height: 400 } });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await p?.close();
    await upstream?.close();
  });

  it('logs in once with ?token=, and the token does not stay in the address bar', async () => {
    const answer = await page.goto(`${p.admin}/?token=${TOKEN}`);
    expect(answer?.status()).toBe(200);
    expect(new URL(page.url()).search).toBe('');
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'floodgate_admin');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(session?.value).not.toContain(TOKEN);
    // Scripts cannot read it.
    expect(await page.evaluate('document.cookie')).toBe('');
    await page.locator('#live[data-live="yes"]').waitFor({ timeout: UI_TIMEOUT_MS });
    await breakerRow('CLOSED').waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.locator('#policy-version').textContent()).toBe('v1');
    expect(await page.locator('#store-health').textContent()).toBe('ok');
  });

  it('shows per-route totals, limited requests included', async () => {
    for (let i = 0; i < 5; i++) await hit(`${p.url}/status/job-${i}`);
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push(await hit(`${p.url}/result/job-1`));
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    await routeCell('status', 'allowed').filter({ hasText: /^5$/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    await routeCell('result', 'limited').filter({ hasText: /^2$/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    await routeCell('result', 'allowed').filter({ hasText: /^3$/ }).waitFor({ timeout: UI_TIMEOUT_MS });
  });

  it('turns OPEN when the upstream fails, then CLOSED after recovery', async () => {
    upstream.mode = { kind: 'status', status: 503 };
    for (let i = 0; i < 3; i++) expect(await hit(`${p.url}/status/down-${i}`)).toBe(503);
    await breakerRow('OPEN').waitFor({ timeout: UI_TIMEOUT_MS });
    await page.locator('li[data-transition="transcriber:CLOSED>OPEN"]').waitFor({ timeout: UI_TIMEOUT_MS });
    // Fails fast while OPEN: the upstream hears nothing more.
    const hits = upstream.hits;
    expect(await hit(`${p.url}/status/while-open`)).toBe(503);
    expect(upstream.hits).toBe(hits);
    await mkdir(join(PROJECT_ROOT, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({
      path: join(PROJECT_ROOT, 'test', 'artifacts', 'dashboard-open.png'),
      fullPage: true,
    });

    upstream.mode = { kind: 'ok' };
    clock.advance(30_000);
    // success_threshold (2) probes succeed: HALF_OPEN, then CLOSED.
    expect(await hit(`${p.url}/status/probe-1`)).toBe(200);
    expect(await hit(`${p.url}/status/probe-2`)).toBe(200);
    await breakerRow('CLOSED').waitFor({ timeout: UI_TIMEOUT_MS });
    await page
      .locator('li[data-transition="transcriber:HALF_OPEN>CLOSED"]')
      .waitFor({ timeout: UI_TIMEOUT_MS });
    await page
      .locator('li[data-transition="transcriber:OPEN>HALF_OPEN"]')
      .waitFor({ timeout: UI_TIMEOUT_MS });

    const shot = join(PROJECT_ROOT, 'test', 'artifacts', 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    // FLOODGATE_UPDATE_SCREENSHOT=1 refreshes the README's picture from this run.
    if (process.env.FLOODGATE_UPDATE_SCREENSHOT === '1') {
      await copyFile(shot, join(PROJECT_ROOT, 'proxy', 'http', 'dashboard', 'screenshot.png'));
    }
  });

  it('a page on the data port cannot reset a breaker with the session cookie; the reset button can', async () => {
    upstream.mode = { kind: 'status', status: 503 };
    for (let i = 0; i < 3; i++) expect(await hit(`${p.url}/status/again-${i}`)).toBe(503);
    await breakerRow('OPEN').waitFor({ timeout: UI_TIMEOUT_MS });
    upstream.mode = { kind: 'ok' };

    // Any page the upstream serves shares the host, so the browser treats it as the same site, and
    // sends the SameSite=Strict session cookie along. Two tries: a form (posted into a frame, so the
    // page itself stays put), and a no-cors fetch.
    const reset = `${p.admin}/admin/breakers/transcriber/reset`;
    // Page-side script, as strings: this file is typed without the DOM.
    const attacks = [
      `const frame = document.createElement('iframe');
       frame.name = 'sink';
       const form = document.createElement('form');
       form.method = 'POST';
       form.action = ${JSON.stringify(reset)};
       form.target = 'sink';
       document.body.append(frame, form);
       form.submit();`,
      `void fetch(${JSON.stringify(reset)}, { method: 'POST', mode: 'no-cors', credentials: 'include' }).catch(() => null);`,
    ];
    for (const attack of attacks) {
      const hostile = await page.context().newPage();
      try {
        await hostile.goto(`${p.url}/status/hostile`);
        const [answer] = await Promise.all([
          hostile.waitForResponse((r) => r.url() === reset, { timeout: UI_TIMEOUT_MS }),
          hostile.evaluate(attack),
        ]);
        expect(answer.status()).toBe(403);
      } finally {
        await hostile.close();
      }
    }
    const breakers = await request(`${p.admin}/admin/breakers`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(((await breakers.body.json()) as Record<string, { state: string }>).transcriber?.state).toBe(
      'OPEN',
    );

    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/admin/breakers/transcriber/reset'), {
        timeout: UI_TIMEOUT_MS,
      }),
      breakerRow('OPEN').locator('button[data-action="reset"]').click({ timeout: UI_TIMEOUT_MS }),
    ]);
    expect(answer.status()).toBe(200);
    await breakerRow('CLOSED').waitFor({ timeout: UI_TIMEOUT_MS });
  });
});
