// Headless-Chromium checks of the evaluation pages, driven by playwright-core (npm; it downloads
// no browser: Debian's /usr/bin/chromium is used). Called by tests/eval/browser.py, which parses
// the one JSON line this prints.
//
//   node tests/eval/chromium.cjs report URL SCREENSHOT            every <audio> loads and decodes, every <img> loads
//   node tests/eval/chromium.cjs vote URL SCREENSHOT RATER CHOICE  the preference page: type RATER, click CHOICE (a|b|tie|none)
//   node tests/eval/chromium.cjs session                           one browser; a JSON step ({mode, url, ...}) per stdin line
//
// Both report console errors, page errors, failed requests, HTTP errors and any request that
// leaves the page's own origin (the report must work with no network).
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

async function main() {
  const argv = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "lmmsn-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
  });
  try {
    if (argv[0] === "session") {  // one browser, many checks: a JSON step per stdin line, a JSON result per stdout line
      const rl = require("readline").createInterface({ input: process.stdin });
      for await (const line of rl) {
        if (line.trim()) process.stdout.write(JSON.stringify(await step(context, JSON.parse(line))) + "\n");
      }
    } else {
      const [mode, url, screenshot, rater, choice] = argv;
      process.stdout.write(JSON.stringify(await step(context, { mode, url, screenshot, rater, choice })) + "\n");
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function step(context, { mode, url, screenshot, rater, choice, settle_ms }) {
  const out = { mode, console_errors: [], page_errors: [], failed_requests: [], http_errors: [], foreign_requests: [] };
  const origin = new URL(url).origin;
  const page = await context.newPage();
  try {
    page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
    page.on("pageerror", (e) => out.page_errors.push(String(e)));
    page.on("requestfailed", (r) => {
      const why = r.failure() && r.failure().errorText;
      // a media element cancels the rest of a download once it has what preload asks for: not a failure
      // (a clip that really fails shows in checkAudio's state and, if absent, as an HTTP error)
      if (r.resourceType() === "media" && why === "net::ERR_ABORTED") return;
      out.failed_requests.push(`${r.url()}: ${why}`);
    });
    page.on("response", (r) => { if (r.status() >= 400) out.http_errors.push(`${r.status()} ${r.url()}`); });
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("blob:")) out.foreign_requests.push(u);
    });
    await page.goto(url, { waitUntil: "load" });
    if (mode === "report") {
      out.title = await page.title();
      out.audio = await page.evaluate(checkAudio);
      out.images = await page.evaluate(() => Array.from(document.images, (img) => ({ src: img.getAttribute("src"), width: img.naturalWidth })));
      out.tables = await page.evaluate(() => document.querySelectorAll("table").length);
      out.headings = await page.evaluate(() => Array.from(document.querySelectorAll("h2"), (h) => h.textContent.trim()));
    } else if (mode === "vote") {
      await page.fill("#rater", rater);
      await page.dispatchEvent("#rater", "change");
      await page.waitForFunction((r) => document.getElementById("status").textContent.includes(`"${r}"`), rater);
      await page.waitForFunction(() => !document.body.dataset.busy);
      out.status_before = await page.textContent("#status");
      out.prompt = await page.evaluate(() => document.getElementById("task").classList.contains("hidden") ? null : document.getElementById("prompt").textContent);
      out.audio = await page.evaluate(checkAudio);
      if (choice && choice !== "none") {
        await page.click(`#vote-${choice}`);
        await page.waitForFunction((before) => document.getElementById("status").textContent !== before, out.status_before);
      }
      if (settle_ms) await page.waitForTimeout(settle_ms);  // let late answers arrive (the race test)
      await page.waitForFunction(() => !document.body.dataset.busy);
      out.status_after = await page.textContent("#status");
      out.message = await page.textContent("#message");
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  } catch (e) {
    out.fatal = String(e && e.stack || e);
  } finally {
    await page.close();
  }
  return out;
}

// In the page: every visible-or-not <audio> with a source loads its metadata, and its bytes
// decode with Web Audio (an OfflineAudioContext needs no user gesture).
async function checkAudio() {
  const wait = (a) => new Promise((resolve) => {
    if (a.readyState >= 1) return resolve("loaded");
    if (a.error) return resolve("error " + a.error.code);  // failed before we listened
    const t = setTimeout(() => resolve("timeout"), 10000);
    a.addEventListener("loadedmetadata", () => { clearTimeout(t); resolve("loaded"); }, { once: true });
    a.addEventListener("error", () => { clearTimeout(t); resolve("error " + (a.error && a.error.code)); }, { once: true });
    if (a.preload === "none") a.load();
  });
  const result = [];
  for (const a of document.querySelectorAll("audio")) {
    const src = a.currentSrc || a.getAttribute("src") || (a.querySelector("source") && a.querySelector("source").src);
    if (!src) continue;
    const state = await wait(a);
    const item = { src: a.getAttribute("src") || src, state, duration: a.duration, decoded: null, error: null };
    try {
      const bytes = await (await fetch(src)).arrayBuffer();
      const size = bytes.byteLength;  // decodeAudioData detaches the buffer
      const buffer = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes);
      item.decoded = { duration: buffer.duration, channels: buffer.numberOfChannels, sample_rate: buffer.sampleRate, bytes: size };
    } catch (e) {
      item.error = String(e);
    }
    result.push(item);
  }
  return result;
}

main().catch((e) => { process.stdout.write(JSON.stringify({ fatal: String(e && e.stack || e) }) + "\n"); process.exit(1); });
