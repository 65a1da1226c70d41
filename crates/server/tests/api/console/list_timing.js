// The console's key list over a large store against the API call it makes: the median
// of five loads each, printed as one JSON line (figures, not assertions).
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const BASE = process.env.KEYWARD_URL;
const ADMIN = { email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD };
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x) => Math.round(x * 10) / 10;

async function main() {
  const login = await fetch(BASE + "/v0/auth/login", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(ADMIN),
  });
  const token = (await login.json()).token;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "keyward-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(BASE + "/console/login");
  await page.fill("#email", ADMIN.email);
  await page.fill("#password", ADMIN.password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  // Both measured in the same browser, one after the other: the API call as the page's
  // own fetch, the page from its request to the end of its rendering.
  const api = [];
  const loads = [];
  const server = [];
  for (let i = 0; i < 6; i++) {
    await page.goto(BASE + "/console/keys", { waitUntil: "load" });
    const timing = await page.evaluate(async (token) => {
      const nav = performance.getEntriesByType("navigation")[0];
      const start = performance.now();
      const response = await fetch("/v0/api_keys?limit=50", { headers: { authorization: `Bearer ${token}` } });
      await response.json();
      return {
        api: performance.now() - start,
        page: nav.domContentLoadedEventEnd - nav.requestStart,
        server: nav.responseEnd - nav.requestStart,
      };
    }, token);
    if (i > 0) { api.push(timing.api); loads.push(timing.page); server.push(timing.server); }
  }
  const rows = await page.$$eval("#keys tbody tr", (trs) => trs.length);
  const count = await page.textContent("#count");
  const total = Number(count.replace(/.* of /, ""));
  await context.close();
  console.log(JSON.stringify({
    rows, total, api_ms: round(median(api)), page_ms: round(median(loads)), page_server_ms: round(median(server)),
  }));
}

main().catch((error) => { console.error(error); process.exit(1); });
