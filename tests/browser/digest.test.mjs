// End-to-end digest subscription in the real browser, against a real SMTP server.
// Run by scripts/test after `cargo build`: ARCHIVIST=target/debug/archivist node --test tests/browser/
// Starts tests/smtp_sink.py (aiosmtpd, every message saved as received) and `archivist serve`,
// subscribes through the form in Debian's Chromium, reads the confirmation email from the
// SMTP server, opens its link and confirms, sends the week's digest with the CLI, finds it in
// the mailbox, unsubscribes with a one-click POST (RFC 8058), and sends again: nothing arrives.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort, waitUp } from './support.mjs';
import { chromium } from 'playwright-core';

const bin = process.env.ARCHIVIST ?? 'target/debug/archivist';
const work = mkdtempSync(join(tmpdir(), 'archivist-digest-browser-'));
const archive = join(work, 'archive');
const data = join(work, 'data');
const mailbox = join(work, 'mailbox');
const configPath = join(work, 'archivist.toml');
const env = { ...process.env, ARCHIVIST_TOKEN_KEY: 'browser-test-key-0123456789abcdef-0123456789' };
let server;
let sink;
let browser;
let base;

function message(id, subject, date, list, body, extra = '') {
  return `From x@example.org Mon May  1 09:12:44 2023
From: ${id.split('@')[0]} <${id.split('@')[0]}@example.org>
To: ${list}@lists.example.org
Subject: ${subject}
Date: ${date}
Message-ID: <${id}>
List-Id: <${list}.lists.example.org>
${extra}
${body}

`;
}

/** The saved messages, oldest first. */
function mails() {
  return readdirSync(mailbox).filter((f) => f.endsWith('.eml')).sort().map((f) => join(mailbox, f));
}

/** Waits until the mailbox holds `n` messages. */
async function waitMails(n) {
  for (let i = 0; i < 200; i++) {
    if (mails().length >= n) return mails();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`expected ${n} messages in the mailbox, found ${mails().length}`);
}

/** A message's headers and decoded text part, read with Python's email package. */
function readMail(path) {
  const out = execFileSync('python3', ['-c', `
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
print(json.dumps({
  'headers': {k: str(v) for k, v in m.items()},
  'types': [p.get_content_type() for p in m.walk()],
  'text': m.get_body(('plain',)).get_content(),
}))`, path]);
  return JSON.parse(out.toString());
}

function archivist(...args) {
  return execFileSync(bin, ['--config', configPath, '--data-dir', data, ...args], { env }).toString();
}

before(async () => {
  mkdirSync(join(archive, 'dev'), { recursive: true });
  mkdirSync(join(archive, 'operators'), { recursive: true });
  mkdirSync(mailbox, { recursive: true });
  // Week 2023-W18 has a cross-posted thread; week 2023-W19 has one more message.
  writeFileSync(join(archive, 'dev', '2023-05.mbox'),
    message('alice@example.org', '[nova] placement upgrade plan', 'Mon, 1 May 2023 10:00:00 +0000', 'dev',
      'We should upgrade the placement service before nova-compute.\nThe canary is green.')
    + message('bob@example.org', 'Re: [nova] placement upgrade plan', 'Tue, 2 May 2023 10:00:00 +0000', 'dev',
      'Agreed, placement goes first.', 'In-Reply-To: <alice@example.org>\nReferences: <alice@example.org>')
    + message('carol@example.org', 'neutron ovn migration notes', 'Tue, 9 May 2023 10:00:00 +0000', 'dev',
      'Notes from the ovn migration of the second region.'));
  writeFileSync(join(archive, 'operators', '2023-05.mbox'),
    message('alice@example.org', '[nova] placement upgrade plan', 'Mon, 1 May 2023 10:00:00 +0000', 'operators',
      'We should upgrade the placement service before nova-compute.\nThe canary is green.'));

  const smtp = spawn('python3', ['tests/smtp_sink.py', mailbox], { stdio: ['ignore', 'pipe', 'inherit'] });
  sink = smtp;
  const smtpPort = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: smtp.stdout });
    lines.once('line', (line) => {
      const m = /^PORT (\d+)$/.exec(line.trim());
      if (m) resolve(Number(m[1])); else reject(new Error(`unexpected sink output ${line}`));
    });
    smtp.once('exit', (code) => reject(new Error(`the SMTP sink exited (${code}): is aiosmtpd installed?`)));
  });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  writeFileSync(configPath, `[digest]
from = "Digests <digest@archive.example>"
base_url = "${base}"
transport = "smtp"

[digest.smtp]
host = "127.0.0.1"
port = ${smtpPort}
tls = "plain"
rate = 0.0
`);
  archivist('import', archive);
  server = spawn(bin, ['--config', configPath, '--data-dir', data, 'serve', '--bind', `127.0.0.1:${port}`],
    { stdio: 'inherit', env });
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
  sink?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

test('subscribe, confirm from the email, receive the digest, one-click unsubscribe', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/digest/`);
  await page.getByLabel('Email address').fill('reader@example.org');
  await page.getByLabel('dev', { exact: true }).check();
  await page.getByLabel('operators', { exact: true }).check();
  await page.getByRole('button', { name: 'Subscribe' }).click();
  await page.waitForURL(/\/digest\/subscribe$/);
  assert.match(await page.locator('main').innerText(), /confirmation link is on its way/);

  // The confirmation email, from the SMTP server's mailbox.
  const [confirmation] = await waitMails(1);
  const confirmMail = readMail(confirmation);
  assert.equal(confirmMail.headers.To, 'reader@example.org');
  const confirmUrl = /(http:\/\/\S+\/digest\/confirm\/\S+)/.exec(confirmMail.text)[1];
  assert.ok(confirmUrl.startsWith(base), confirmUrl);

  // Nothing is sent before confirmation.
  archivist('digest', 'send', '--week', '2023-W17');
  assert.equal(mails().length, 1);

  // Opening the link asks; the button confirms.
  await page.goto(confirmUrl);
  await page.getByRole('button', { name: 'Confirm subscription' }).click();
  assert.match(await page.locator('h1').innerText(), /Subscription confirmed/);
  assert.match(await page.locator('main').innerText(), /dev, operators/);

  // The week's digest reaches the mailbox, once.
  archivist('digest', 'send', '--week', '2023-W18');
  const all = await waitMails(2);
  assert.equal(all.length, 2);
  const digest = readMail(all[1]);
  assert.equal(digest.headers.To, 'reader@example.org');
  assert.match(digest.headers.Subject, /^Weekly digest 2023-W18/);
  assert.deepEqual(digest.types.slice(0, 3), ['multipart/alternative', 'text/plain', 'text/html']);
  assert.equal(digest.headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
  assert.match(digest.text, /placement upgrade plan/);
  const unsubscribeUrl = /<(http[^>]+)>/.exec(digest.headers['List-Unsubscribe'])[1];
  assert.ok(unsubscribeUrl.startsWith(`${base}/digest/unsubscribe/`), unsubscribeUrl);

  // The digest's web copy shows the thread once, with both lists.
  await page.goto(`${base}/digest/2023-W18?lists=dev,operators`);
  const entries = page.locator('article.digest-thread');
  assert.equal(await entries.count(), 1);
  assert.match(await entries.first().innerText(), /dev, operators/);

  // A GET of the unsubscribe link (what mail scanners do) changes nothing ...
  await page.goto(unsubscribeUrl);
  assert.match(await page.locator('h1').innerText(), /Unsubscribe/);
  // ... the one-click POST (what mail clients do, without cookies) unsubscribes at once.
  const response = await fetch(unsubscribeUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'List-Unsubscribe=One-Click',
  });
  assert.equal(response.status, 200);

  // The next week's digest goes to nobody; re-running the sent week sends nothing.
  const report = JSON.parse(archivist('digest', 'send', '--week', '2023-W19', '--json'));
  assert.equal(report.sent, 0);
  assert.match(archivist('digest', 'send', '--week', '2023-W18'), /already sent/);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(mails().length, 2);
  await page.close();
});
