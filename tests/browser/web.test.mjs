// Real-browser tests of the web archive. Run by scripts/test after `cargo build`:
// ARCHIVIST=target/debug/archivist node --test tests/browser/
// Starts `archivist serve` on a free port over an archive imported from fixtures written
// here, then drives Debian's Chromium (never a downloaded browser) through playwright-core.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitUp } from './support.mjs';
import { chromium } from 'playwright-core';

const bin = process.env.ARCHIVIST ?? 'target/debug/archivist';
const work = mkdtempSync(join(tmpdir(), 'archivist-browser-'));
const archive = join(work, 'archive');
const data = join(work, 'data');
let server;
let browser;
let base;

function mbox(messages) {
  return messages.map((m) => `From x@example.org Mon May  1 09:12:44 2023\n${m}\n`).join('');
}

const root = `From: Alice <alice@example.org>
To: dev@lists.example.org, operators@lists.example.org
Subject: [nova] placement upgrade plan
Date: Mon, 1 May 2023 10:00:00 +0000
Message-ID: <root@example.org>
LIST_ID

We should upgrade the placement service before nova-compute.
The zebrafish canary test is green.
`;
const reply = `From: Bob <bob@example.org>
To: dev@lists.example.org
Subject: Re: [nova] placement upgrade plan
Date: Mon, 1 May 2023 11:00:00 +0000
Message-ID: <reply@example.org>
In-Reply-To: <root@example.org>
References: <root@example.org>
List-Id: <dev.lists.example.org>

> We should upgrade the placement service before nova-compute.
Agreed.
`;
const hostile = `From: Mallory <mallory@evil.example>
Subject: <script>window.__pwned=1</script> hostile
Date: Tue, 2 May 2023 10:00:00 +0000
Message-ID: <"><script>window.__pwned=2</script>@evil.example>
List-Id: <dev.lists.example.org>
Content-Type: text/html

<p onmouseover="window.__pwned=3">hover</p><script>window.__pwned=4</script>
<img src=x onerror="window.__pwned=5"><a href="javascript:window.__pwned=6">click</a>
<svg onload="window.__pwned=7"></svg>
`;

before(async () => {
  mkdirSync(join(archive, 'dev'), { recursive: true });
  mkdirSync(join(archive, 'operators'), { recursive: true });
  writeFileSync(join(archive, 'dev', '2023-05.mbox'),
    mbox([root.replace('LIST_ID', 'List-Id: <dev.lists.example.org>'), reply, hostile]));
  writeFileSync(join(archive, 'operators', '2023-05.mbox'),
    mbox([root.replace('LIST_ID', 'List-Id: <operators.lists.example.org>')
      .replace('Subject: ', 'Subject: [Operators] ')]));
  execFileSync(bin, ['--data-dir', data, 'import', archive], { stdio: 'inherit' });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ['--data-dir', data, 'serve', '--bind', `127.0.0.1:${port}`], { stdio: 'inherit' });
  await waitUp(`${base}/`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

test('search, highlighted hit, thread, also-posted-to, raw', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.getByLabel('Search the archive').fill('"zebrafish canary"');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/\/search\?q=/);
  const hit = page.locator('ol.hits li').first();
  assert.match(await hit.innerText(), /placement upgrade plan/);
  assert.equal(await hit.locator('.snippet b').first().innerText(), 'zebrafish');
  assert.match(await hit.innerText(), /dev, operators/);
  await hit.getByRole('link', { name: /thread of 2/ }).click();
  await page.waitForURL(/\/t\//);
  assert.match(await page.locator('h1').innerText(), /placement upgrade plan/);
  assert.equal(await page.locator('article.message').count(), 2);
  // The root message was cross-posted: its page says so and links the other list.
  const also = page.locator('article.message').first().locator('.also a');
  assert.equal(await also.innerText(), 'operators');
  await also.click();
  await page.waitForURL(/\/operators\/$/);
  assert.match(await page.locator('ol.threads').innerText(), /placement upgrade plan/);
  await page.locator('ol.threads a').first().click();
  await page.waitForURL(/\/t\//);
  await page.locator('article.message').first().getByRole('link', { name: 'raw' }).click();
  await page.waitForURL(/\/raw$/);
  assert.match(await page.locator('body').innerText(), /Message-ID: <root@example.org>/);
  await page.close();
});

test('hostile HTML mail runs no script', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/search?q=hostile`);
  await page.locator('ol.hits a').first().click();
  await page.waitForURL(/\/m\//);
  await page.mouse.move(10, 10);
  await page.hover('article.message');
  const pwned = await page.evaluate(() => window.__pwned);
  assert.equal(pwned, undefined);
  assert.match(await page.locator('h1').innerText(), /<script>window.__pwned=1<\/script> hostile/);
  const csp = (await page.request.get(page.url())).headers()['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  for (const path of ['/', '/dev/', `/t/${encodeURIComponent('"><script>window.__pwned=2</script>@evil.example')}`]) {
    await page.goto(`${base}${path}`);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, path);
  }
  await page.close();
});
