// The console in a real browser: Debian's Chromium driven by playwright-core, every
// page checked by axe-core. Run by crates/server/tests/api/console.rs, which starts the
// server and the people in it and passes them in the environment. Fails (exit 1) at the
// first broken expectation; prints one JSON line of figures at the end.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const http = require("node:http");
const { chromium } = require("playwright-core");
const axe = require("axe-core");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("KEYWARD_URL");
const ADMIN = { email: env("ADMIN_EMAIL"), password: env("ADMIN_PASSWORD") };
const MEMBER = { email: env("MEMBER_EMAIL"), password: env("MEMBER_PASSWORD") };
const THROTTLED = env("THROTTLED_EMAIL");
const MEMBER_KEY_NAME = env("MEMBER_KEY_NAME");
const ADMIN_KEY_NAME = env("ADMIN_KEY_NAME");
const SHOTS = env("SCREENSHOT_DIR");

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };
const figures = {};
const axeFindings = [];

async function launch() {
  // A fresh profile for each person, thrown away afterwards.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "keyward-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
    viewport: DESKTOP,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  return { context, page, profile };
}

async function api(method, route, token, body) {
  const response = await fetch(BASE + route, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function apiLogin(who) {
  const response = await fetch(BASE + "/v0/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(who),
  });
  assert.equal(response.status, 200, "API login");
  return (await response.json()).token;
}

async function verify(token, secret) {
  const { status, body } = await api("POST", "/v0/keys/verify", token, { key: secret });
  assert.equal(status, 200, `verify answered ${status}`);
  return body;
}

// No serious or critical accessibility violation, on every page visited.
async function checkA11y(page, name) {
  await page.evaluate(axe.source);
  const result = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ["violations"] }));
  for (const v of result.violations) {
    if (v.impact === "serious" || v.impact === "critical") {
      axeFindings.push(`${name}: ${v.id} (${v.impact}) ${v.help} at ${v.nodes.map((n) => n.target).join(" ")}`);
    }
  }
}

// Both sizes: a screenshot of each, and the page checked by axe at both.
async function snapshot(page, name) {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(viewport);
    await checkA11y(page, `${name} (${size})`);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${size}.png`), fullPage: true });
  }
  await page.setViewportSize(DESKTOP);
}

async function submit(page, selector) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.click(selector),
  ]);
  return response;
}

async function logIn(page, who) {
  await page.goto(BASE + "/");
  assert.match(page.url(), /\/console\/login$/, "a visitor is sent to the login page");
  await page.fill("#email", who.email);
  await page.fill("#password", who.password);
  const response = await submit(page, "form[action='/console/login'] button[type=submit]");
  assert.equal(response.status(), 200, "login lands on the keys page");
  assert.match(page.url(), /\/console\/keys$/);
}

async function storageIsEmpty(page) {
  return page.evaluate(() => localStorage.length === 0 && sessionStorage.length === 0);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const adminToken = await apiLogin(ADMIN);
  const admin = await launch();
  const { page } = admin;

  // A wrong password says so, and the login page is accessible.
  await page.goto(BASE + "/console/login");
  await snapshot(page, "login");
  await page.fill("#email", ADMIN.email);
  await page.fill("#password", "not-the-password");
  let response = await submit(page, "form[action='/console/login'] button[type=submit]");
  assert.equal(response.status(), 401);
  assert.equal((await page.textContent("[role=alert]")).trim(), "Wrong email or password.");

  // The throttle: an account with too many failures is told to wait.
  await page.fill("#email", THROTTLED);
  await page.fill("#password", "still-wrong-password");
  response = await submit(page, "form[action='/console/login'] button[type=submit]");
  assert.equal(response.status(), 429);
  assert.match(await page.textContent("[role=alert]"), /Too many failed logins\. Try again in/);

  // An expired or forged session is sent to log in again, with a message.
  const host = new URL(BASE).hostname;
  await admin.context.addCookies([{ name: "kw_session", value: "eyJhbGciOiJIUzI1NiJ9.e30.forged", domain: host, path: "/console" }]);
  await page.goto(BASE + "/console/keys");
  assert.match(page.url(), /\/console\/login\?expired=1$/);
  assert.match(await page.textContent("[role=alert]"), /Your session has ended/);

  await logIn(page, ADMIN);
  const cookies = await admin.context.cookies(BASE + "/console/keys");
  const session = cookies.find((c) => c.name === "kw_session");
  assert.ok(session.httpOnly, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Strict");
  assert.equal(session.path, "/console");
  await snapshot(page, "keys");

  // Create a key with a rate limit and credits; only the permissions one may grant.
  await page.click("text=Create a key");
  await snapshot(page, "create-key");
  await page.fill("#name", "browser key");
  await page.check("input[name=permissions][value='keyward.keys.read']");
  await page.fill("#rl_limit_0", "100");
  await page.fill("#rl_seconds_0", "60");
  await page.fill("#credits_remaining", "50");
  await page.fill("#metadata", '{"team": "web"}');
  response = await submit(page, "form[action='/console/keys'] button[type=submit]");
  assert.equal(response.status(), 201);
  assert.equal(response.headers()["cache-control"], "no-store");
  const secret = (await page.textContent("#secret")).trim();
  assert.match(secret, /^kw_/, "the secret is on the page");
  assert.ok(!page.url().includes(secret) && !(await page.title()).includes(secret));
  assert.ok(await storageIsEmpty(page), "nothing in local or session storage");
  await snapshot(page, "secret");
  await page.click("button[data-copy=secret]");
  await page.waitForFunction(() => document.getElementById("copied").textContent.length > 0);

  // The secret works in a real HTTP request, and its verification shows in the chart
  // and in the list's 24-hour count once flushed.
  const verdict = await verify(adminToken, secret);
  assert.equal(verdict.valid, true, JSON.stringify(verdict));
  assert.equal(verdict.credits.remaining, 49);
  await page.click("text=Go to the key's page");
  const keyUrl = page.url();
  let valid = 0;
  for (let i = 0; i < 50 && valid < 1; i++) {
    await page.goto(keyUrl);
    valid = Number(await page.getAttribute("figure.chart svg", "data-valid"));
    if (valid < 1) await page.waitForTimeout(200);
  }
  assert.equal(valid, 1, "the verification is in the key's usage chart");
  assert.match(await page.textContent("#credits"), /^49/);
  await snapshot(page, "key");
  await page.goto(BASE + "/console/keys");
  const uses = await page.getAttribute("tr:has(a:text-is('browser key')) td[data-uses-24h]", "data-uses-24h");
  assert.equal(uses, "1", "the list counts the verification of the last 24 hours");

  // Edit: a new name and a disabled key, saved and shown.
  await page.goto(keyUrl);
  await page.fill("#name", "browser key (renamed)");
  response = await submit(page, "form.stack button:text('Save')");
  assert.match(page.url(), /\?saved=1$/);
  assert.match(await page.textContent("h1"), /browser key \(renamed\)/);
  assert.match(await page.textContent("#credits"), /^49/, "saving leaves spent credits spent");

  // Rotate with a grace period: the new secret shown once, both work for now.
  await page.selectOption("#grace_seconds", "3600");
  response = await submit(page, "form[action$='/rotate'] button[type=submit]");
  assert.equal(response.headers()["cache-control"], "no-store");
  const rotated = (await page.textContent("#secret")).trim();
  assert.notEqual(rotated, secret);
  assert.equal((await verify(adminToken, rotated)).valid, true);
  assert.equal((await verify(adminToken, secret)).valid, true, "the old secret works during the grace period");

  // Revoke with a confirmation; both secrets are refused afterwards.
  await page.goto(keyUrl);
  await page.click("text=Revoke this key…");
  await snapshot(page, "revoke");
  response = await submit(page, "form[action$='/revoke'] button[type=submit]");
  assert.match(page.url(), /\?revoked=1$/);
  assert.match(await page.textContent("h1"), /revoked/);
  for (const s of [secret, rotated]) {
    const refused = await verify(adminToken, s);
    assert.equal(refused.valid, false);
    assert.equal(refused.code, "REVOKED");
  }

  // Users: an administrator adds one and changes their role.
  await page.goto(BASE + "/console/users");
  await page.fill("#email", "added@example.com");
  await page.fill("#display_name", "Added Person");
  await page.fill("#password", "added-password-1");
  response = await submit(page, "form[action='/console/users'] button[type=submit]");
  assert.match(page.url(), /created=1$/);
  await snapshot(page, "users");
  await page.click("a:text-is('added@example.com')");
  await page.selectOption("#role", "admin");
  await submit(page, "form.stack button:text('Save')");
  assert.match(page.url(), /\?saved=1$/);
  assert.equal(await page.inputValue("#role"), "admin");
  await page.uncheck("#active");
  await submit(page, "form.stack button:text('Save')");
  assert.equal(await page.isChecked("#active"), false, "deactivated");
  await snapshot(page, "user");

  // The audit log, filtered by action.
  await page.goto(BASE + "/console/audit?action=key.revoked");
  const rows = await page.$$eval("table.events tbody tr", (trs) => trs.map((tr) => tr.textContent));
  assert.equal(rows.length, 1);
  assert.match(rows[0], /key\.revoked.*console/s);
  await page.goto(BASE + "/console/audit");
  await snapshot(page, "audit");
  await page.goto(BASE + "/console/profile");
  await snapshot(page, "profile");

  // A member sees only their own keys and is offered only what they hold.
  const member = await launch();
  await logIn(member.page, MEMBER);
  const names = await member.page.$$eval("#keys tbody td:first-child", (tds) => tds.map((t) => t.textContent.trim()));
  assert.deepEqual(names, [MEMBER_KEY_NAME]);
  assert.equal(await member.page.$("#owner"), null, "members have no owner filter");
  await member.page.goto(BASE + "/console/keys/new");
  const offered = await member.page.$$eval("input[name=permissions]", (inputs) => inputs.map((i) => i.value));
  assert.deepEqual(offered.sort(), ["invoices.read", "keyward.keys.*", "keyward.keys.read", "keyward.keys.verify", "keyward.keys.write"].sort());
  response = await member.page.goto(BASE + "/console/users");
  assert.equal(response.status(), 403, "members cannot see users");
  await checkA11y(member.page, "refusal");
  const adminKeyId = await api("GET", "/v0/api_keys?limit=100", adminToken).then((r) =>
    r.body.items.find((k) => k.name === ADMIN_KEY_NAME).id);
  response = await member.page.goto(`${BASE}/console/keys/${adminKeyId}`);
  assert.equal(response.status(), 404, "another's key is not found");

  // A page of another origin posting to the console without the token is refused,
  // though the browser is logged in, and nothing changes.
  const attacker = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><title>win a prize</title>
      <form id=f method=post action="${BASE}/console/keys/${adminKeyId}/revoke"></form>
      <script>document.getElementById('f').submit()</script>`);
  });
  await new Promise((resolve) => attacker.listen(0, "127.0.0.1", resolve));
  const evil = `http://127.0.0.1:${attacker.address().port}/`;
  const adminPage = await admin.context.newPage();
  const [forged] = await Promise.all([
    adminPage.waitForNavigation({ url: /\/revoke$/ }),
    adminPage.goto(evil),
  ]);
  assert.equal(forged.status(), 403, "a cross-site POST is refused");
  assert.match(await adminPage.textContent("[role=alert]"), /did not come from this console/);
  attacker.close();
  const stillThere = await api("GET", `/v0/api_keys/${adminKeyId}`, adminToken);
  assert.equal(stillThere.body.state, "active", "the forged request changed nothing");
  // And a same-origin POST without the token (a script's fetch) is refused too.
  const tokenless = await page.evaluate(async (url) =>
    (await fetch(url, { method: "POST", body: new URLSearchParams({ name: "x" }) })).status,
    `${BASE}/console/keys`);
  assert.equal(tokenless, 403);

  // A member changes their own password, which logs them out, and logs in again.
  await member.page.goto(BASE + "/console/profile");
  await member.page.fill("#current_password", "wrong-current-1");
  await member.page.fill("#new_password", "member-password-2");
  await member.page.fill("#confirm_password", "member-password-2");
  response = await submit(member.page, "form[action='/console/profile/password'] button");
  assert.equal(response.status(), 422);
  assert.match(await member.page.textContent("[role=alert]"), /current password is wrong/);
  await member.page.fill("#current_password", MEMBER.password);
  await member.page.fill("#new_password", "member-password-2");
  await member.page.fill("#confirm_password", "member-password-2");
  await submit(member.page, "form[action='/console/profile/password'] button");
  assert.match(member.page.url(), /password_changed=1$/);
  await logIn(member.page, { email: MEMBER.email, password: "member-password-2" });

  // Log out ends the session.
  await submit(member.page, "form.logout button");
  assert.match(member.page.url(), /signed_out=1$/);
  await member.page.goto(BASE + "/console/keys");
  assert.match(member.page.url(), /\/console\/login$/);

  await member.context.close();
  await admin.context.close();
  assert.deepEqual(axeFindings, [], "axe-core found serious or critical violations");
  console.log(JSON.stringify(figures));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
