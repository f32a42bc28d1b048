// Opens the page in real headless Chromium (Debian's, driven by playwright-core), served from
// an origin of its own, against a real gateway: the run's tokens appear as they stream over
// Connect, and an interrupt is resumed from the page.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { startGateway } from "../../../clients/typescript/dist/test/gateway.js";

const DIST = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".js": "text/javascript" };

let gateway, site, browser, page, siteUrl;

before(async () => {
  gateway = await startGateway();
  site = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    try {
      const body = await readFile(join(DIST, path === "/" ? "index.html" : path.slice(1)));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "text/html" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((done) => site.listen(0, "127.0.0.1", done));
  siteUrl = `http://127.0.0.1:${site.address().port}/?gateway=${encodeURIComponent(gateway.httpUrl)}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  await page.goto(siteUrl);
});

after(async () => {
  await browser?.close();
  site?.close();
  await gateway?.stop();
});

test("the page streams a run's tokens and values over Connect", async () => {
  await page.fill("#topic", "penguins");
  // Every text the token area shows, as it changes: the tokens come one at a time.
  await page.evaluate(() => {
    window.seen = [];
    new MutationObserver(() => window.seen.push(document.getElementById("tokens").textContent)).observe(
      document.getElementById("tokens"),
      { childList: true, characterData: true, subtree: true },
    );
  });
  await page.click("#run");
  await page.waitForFunction(() => document.getElementById("status").textContent !== "streaming", null, {
    timeout: 30_000,
  });
  assert.equal(await page.textContent("#error"), "");
  assert.equal(await page.textContent("#status"), "done");
  const joke = "Why did the penguins cross the road? To get to the other side!";
  assert.equal(await page.textContent("#tokens"), joke);
  const tokenEvents = Number(await page.textContent("#token-count"));
  assert.ok(tokenEvents > 3, `only ${tokenEvents} token events`);
  const seen = await page.evaluate(() => window.seen);
  const partial = seen.filter((text) => text && text !== joke && joke.startsWith(text));
  assert.ok(partial.length >= 3, `the page never showed the reply in part: ${JSON.stringify(seen)}`);
  assert.deepEqual(JSON.parse(await page.textContent("#values")), { topic: "penguins", joke });
});

test("an interrupt is shown and resumed from the page", async () => {
  await page.fill("#action", "ship it");
  await page.click("#ask");
  await page.waitForFunction(() => document.getElementById("question").textContent !== "", null, { timeout: 30_000 });
  assert.equal(await page.textContent("#question"), "Approve 'ship it'?");
  await page.click("#approve");
  await page.waitForFunction(() => document.getElementById("outcome").textContent !== "", null, { timeout: 30_000 });
  assert.equal(await page.textContent("#outcome"), "approved");
  assert.equal(await page.textContent("#error"), "");
});
