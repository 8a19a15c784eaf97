// stepwatch dashboard: reads the Monitor's JSON routes and its /events stream.
//
// Rules this file keeps:
// - every string from the server is put in the page as text (textContent,
//   setAttribute on plain attributes), never parsed as HTML;
// - the token lives in this tab's memory only and travels in an
//   Authorization header, never in a URL (so the stream is read with fetch,
//   not EventSource, which cannot send headers);
// - every URL is relative, so the page works under a reverse proxy's prefix;
// - the number of rows drawn is bounded, whatever the number of executions.
"use strict";

(function () {
  const PAGE_SIZE = 50; // executions drawn at once
  const EVENTS_KEPT = 100; // events drawn at once
  const POLL_MS = 5000; // summary, health and group: windows slide with time
  const LIVE_POLL_MS = 60000; // executions while the stream is live: every change is an event
  const FAST_MS = 200; // coalescing delay after a live event
  const SLOW_MS = 1000; // coalescing delay for the summary, health and group
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const meta = document.querySelector('meta[name="stepwatch-auth"]');
  const needsToken = meta !== null && meta.getAttribute("content") === "token";

  const state = {
    token: null,
    started: false,
    query: "",
    stateFilter: "",
    offset: 0,
    matched: 0,
    openId: null,
    lastSeq: 0,
    live: false,
    polledAt: 0,
    stream: null, // AbortController of the running stream
    generation: 0, // bumped when the token changes: old loops stop
  };

  class Unauthorized extends Error {}
  class Offline extends Error {}

  async function request(path, options) {
    try {
      return await fetch(path, options);
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new Offline(`server unreachable (${error && error.message ? error.message : error})`);
    }
  }

  // ------------------------------------------------------------ DOM helpers
  function el(tag, options, ...children) {
    const node = document.createElement(tag);
    const opts = options || {};
    if (opts.className) node.className = opts.className;
    if (opts.attrs) {
      for (const [name, value] of Object.entries(opts.attrs)) {
        node.setAttribute(name, String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replaceChildren(node, children) {
    node.replaceChildren(...children);
  }

  function cssToken(text) {
    return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-");
  }

  // ------------------------------------------------------------- formatting
  function percentText(ratio) {
    return ratio === null || ratio === undefined ? "n/a" : `${(ratio * 100).toFixed(1)}%`;
  }

  function secondsText(value) {
    if (value === null || value === undefined) return "n/a";
    if (value < 1) return `${Math.round(value * 1000)} ms`;
    if (value < 60) return `${value.toFixed(1)} s`;
    const whole = Math.round(value);
    const minutes = Math.floor(whole / 60);
    const rest = whole % 60;
    if (minutes < 60) return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function clockText(iso) {
    if (!iso) return "";
    const when = new Date(iso);
    return Number.isNaN(when.getTime()) ? String(iso) : when.toLocaleTimeString();
  }

  const STATE_WORDS = { executing: "running", pending: "pending" };
  const HEALTH_WORDS = { pass: "healthy", warn: "degraded", fail: "unhealthy" };

  function words(table, value) {
    return Object.hasOwn(table, value) ? table[value] : String(value);
  }

  function stateWords(value) {
    return words(STATE_WORDS, value);
  }

  function slaWords(row) {
    if (row.late === true) return "late";
    if (row.at_risk === true) return "at risk";
    if (row.sla_deadline !== undefined && row.sla_deadline !== null) return "on time";
    return "no SLA";
  }

  // ------------------------------------------------------------------ HTTP
  function headers(extra) {
    const result = Object.assign({ Accept: "application/json" }, extra || {});
    if (state.token !== null) result.Authorization = `Bearer ${state.token}`;
    return result;
  }

  async function getJson(path) {
    const response = await request(path, { headers: headers(), cache: "no-store" });
    if (response.status === 401) throw new Unauthorized("token refused");
    let body;
    try {
      body = await response.json();
    } catch (error) {
      throw new Error(`HTTP ${response.status}: the answer is not JSON`);
    }
    // /healthz answers 503 with a body when failing; any other error is an error
    if (!response.ok && !(path === "healthz" && response.status === 503)) {
      throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
    }
    return body;
  }

  function failed(error) {
    if (error instanceof Unauthorized) {
      askForToken("The token was refused. Enter it again.");
      return;
    }
    if (error instanceof Offline) return; // the stream's loop says so in the badge
    setConnection("error", `error: ${error && error.message ? error.message : error}`);
    console.error("stepwatch dashboard:", error);
  }

  // One refresh of a kind at a time; a request while one runs runs once more after it.
  // Refreshes triggered by events wait at least 4 times what the last one took, so
  // a server with many executions is asked less often, not harder.
  function refresher(load) {
    let running = false;
    let again = false;
    let timer = null;
    let took = 0;
    async function run() {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          const started = performance.now();
          await load();
          took = performance.now() - started;
        } while (again);
        if (state.live && $("connection").getAttribute("data-state") === "error") {
          setConnection("live", "connection: live"); // the error has passed
        }
      } catch (error) {
        failed(error);
      } finally {
        running = false;
      }
    }
    run.soon = function (delay) {
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        run();
      }, Math.max(delay, 4 * took));
    };
    return run;
  }

  // ------------------------------------------------------------ executions
  const refreshExecutions = refresher(async () => {
    const params = new URLSearchParams({
      steps: "false",
      limit: String(PAGE_SIZE),
      offset: String(state.offset),
    });
    if (state.query) params.set("q", state.query);
    if (state.stateFilter) params.set("state", state.stateFilter);
    const body = await getJson(`executions?${params}`);
    const matched = body.matched !== undefined ? body.matched : body.executions.length;
    const total = body.total !== undefined ? body.total : matched;
    if (state.offset > 0 && state.offset >= matched) {
      state.offset = Math.max(0, Math.floor((matched - 1) / PAGE_SIZE) * PAGE_SIZE);
      refreshExecutions.soon(0);
    }
    state.matched = matched;
    drawExecutions(body.executions, matched, total);
  });

  function progressCell(row) {
    const bar = el("div", { className: "bar", attrs: { role: "progressbar" } });
    const fill = el("div", { className: "fill" });
    bar.append(fill);
    bar.setAttribute("aria-label", `progress of ${row.execution_id}`);
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    let text;
    if (row.percent === null || row.percent === undefined) {
      text = row.state === "pending" ? "not started" : "unknown";
      bar.setAttribute("aria-valuetext", row.state === "pending" ? "not started" : "progress unknown");
    } else {
      const percent = Math.round(row.percent * 10) / 10;
      text = `${Math.round(row.percent)}%`;
      bar.setAttribute("aria-valuenow", String(percent));
      const steps = row.total_steps === null ? "" : ` (${row.completed_steps} of ${row.total_steps} steps done)`;
      bar.setAttribute("aria-valuetext", `${text}${steps}`);
      fill.style.width = `${Math.min(100, Math.max(0, row.percent))}%`;
    }
    return el("td", null, el("div", { className: "progress" }, bar, el("span", { className: "pct" }, text)));
  }

  // ETAs count down between two refreshes (a refresh comes with every event).
  function etaCell(eta) {
    if (eta === null || eta === undefined) return el("td", { className: "eta" }, "unknown");
    const cell = el("td", { className: "eta" }, secondsText(eta));
    cell.setAttribute("data-eta", String(eta));
    cell.setAttribute("data-at", String(Date.now()));
    return cell;
  }

  function tickEtas() {
    const now = Date.now();
    for (const cell of document.querySelectorAll("#executions td[data-eta]")) {
      const left = Number(cell.getAttribute("data-eta")) - (now - Number(cell.getAttribute("data-at"))) / 1000;
      cell.textContent = secondsText(Math.max(0, left));
    }
  }

  function drawExecutions(rows, matched, total) {
    const tbody = $("executions").tBodies[0];
    const lines = rows.map((row) => {
      const open = el("button", { className: "link", attrs: { type: "button" } }, row.execution_id);
      open.addEventListener("click", () => openExecution(row.execution_id));
      const line = el(
        "tr",
        { className: row.execution_id === state.openId ? "selected" : "" },
        el("td", { className: "id" }, open),
        el("td", null, row.name),
        el("td", { className: `state state-${cssToken(row.state)}` }, stateWords(row.state)),
        progressCell(row),
        el("td", { className: "step" }, row.current_step || ""),
        etaCell(row.eta_seconds),
        el("td", { className: `sla sla-${cssToken(slaWords(row))}` }, slaWords(row)),
        el("td", null, row.attempt === undefined ? "" : row.attempt),
      );
      line.setAttribute("data-execution-id", row.execution_id);
      return line;
    });
    replaceChildren(tbody, lines);
    const filtered = state.query || state.stateFilter;
    const count = filtered
      ? `${rows.length} shown of ${matched} matching (${total} in all)`
      : `${rows.length} shown of ${total}`;
    if ($("count").textContent !== count) $("count").textContent = count; // a live region
    const pages = Math.max(1, Math.ceil(matched / PAGE_SIZE));
    const page = Math.floor(state.offset / PAGE_SIZE) + 1;
    $("page").textContent = `page ${page} of ${pages}`;
    $("prev").disabled = state.offset === 0;
    $("next").disabled = state.offset + PAGE_SIZE >= matched;
  }

  // ------------------------------------------------------------------ detail
  const refreshDetail = refresher(async () => {
    const id = state.openId;
    if (id === null) return;
    const response = await request(`executions/${encodeURIComponent(id)}`, {
      headers: headers(),
      cache: "no-store",
    });
    if (response.status === 401) throw new Unauthorized("token refused");
    if (state.openId !== id) return;
    if (response.status === 404) {
      $("detail-summary").textContent = "This execution is no longer known to the Monitor.";
      replaceChildren($("timeline"), []);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    drawDetail(await response.json());
  });

  function openExecution(id) {
    state.openId = id;
    $("detail").hidden = false;
    $("detail-id").textContent = id;
    $("detail-summary").textContent = "loading";
    replaceChildren($("timeline"), []);
    for (const row of $("executions").tBodies[0].rows) {
      row.classList.toggle("selected", row.getAttribute("data-execution-id") === id);
    }
    refreshDetail();
  }

  function drawDetail(progress) {
    const parts = [
      `${stateWords(progress.state)}`,
      progress.percent === null ? "progress unknown" : `${Math.round(progress.percent)}% done`,
      `${progress.completed_steps} completed, ${progress.failed_steps} failed, ${progress.running_steps} running` +
        (progress.pending_steps === null ? "" : `, ${progress.pending_steps} pending`) + " steps",
      `attempt ${progress.attempt}`,
      progress.eta_seconds === null ? "ETA unknown" : `ETA ${secondsText(progress.eta_seconds)}`,
      `SLA: ${slaWords(progress)}`,
    ];
    $("detail-summary").textContent = `${progress.name}: ${parts.join(" · ")}`;
    const steps = (progress.steps || [])
      .slice()
      .sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at) || a.attempt - b.attempt);
    const retried = new Set(steps.filter((s) => s.attempt > 1 || s.attempts > 1).map((s) => s.name));
    const starts = steps.map((s) => Date.parse(s.started_at));
    // A running step lasts until now: the browser's clock, unless it is far from the server's.
    const updated = Date.parse(progress.updated_at);
    const now = Math.abs(Date.now() - updated) < 3600e3 ? Date.now() : updated;
    const ends = steps.map((s, i) => (s.ended_at ? Date.parse(s.ended_at) : Math.max(now, starts[i])));
    const first = starts.length ? Math.min(...starts) : 0;
    const last = ends.length ? Math.max(...ends) : 0;
    const span = Math.max(1, last - first);
    const items = steps.map((step, index) => {
      const words = [stateWords(step.state)];
      if (retried.has(step.name)) {
        words.push(step.attempts > 1 ? `attempt ${step.attempt} of ${step.attempts}` : `attempt ${step.attempt}`);
      }
      if (step.duration !== null && step.duration !== undefined) words.push(secondsText(step.duration));
      if (step.fraction !== null && step.fraction !== undefined && step.state === "running") {
        words.push(`${Math.round(step.fraction * 100)}% of the step`);
      }
      const label = el(
        "div",
        { className: "step-label" },
        el("strong", null, step.name),
        step.step_type ? el("span", { className: "muted" }, ` (${step.step_type})`) : null,
        el("br"),
        el("span", { className: `state state-${cssToken(step.state)}` }, words.join(", ")),
        step.message ? el("div", { className: "muted" }, step.message) : null,
      );
      const bar = el("div", { className: `span state-${cssToken(step.state)}` });
      bar.style.left = `${((starts[index] - first) / span) * 100}%`;
      bar.style.width = `${((ends[index] - starts[index]) / span) * 100}%`;
      const track = el("div", { className: "track", attrs: { "aria-hidden": "true" } }, bar);
      const item = el("li", null, label, track);
      item.setAttribute("data-step", step.name);
      return item;
    });
    if (!items.length) items.push(el("li", null, "No step has started yet."));
    replaceChildren($("timeline"), items);
  }

  // ---------------------------------------------------- summary, health, group
  const refreshOverview = refresher(async () => {
    const [summary, health, alerts, group] = await Promise.all([
      getJson("summary"),
      getJson("healthz"),
      getJson("alerts?active=true"),
      getJson("group"),
    ]);
    drawSummary(summary);
    drawHealth(health, alerts.alerts || []);
    drawGroup(group);
  });

  function figure(label, value) {
    return el("div", null, el("dt", null, label), el("dd", null, value));
  }

  function drawSummary(summary) {
    $("summary-window").textContent = `(last ${secondsText(summary.window)})`;
    const sla = summary.sla || {};
    const figures = [
      figure("Running", summary.active_executions),
      figure("Queued", summary.queue_depth),
      figure("Scheduled", summary.scheduled === undefined ? "n/a" : summary.scheduled),
      figure("Ended", summary.total),
      figure("Success rate", percentText(summary.success_rate)),
      figure("Failure rate", percentText(summary.failure_rate)),
      figure("Timeout rate", percentText(summary.timeout_rate)),
      figure("Retry rate", percentText(summary.retry_rate)),
      figure("Lost rate", percentText(summary.lost_rate)),
      figure("Duration p50", secondsText(summary.duration.p50)),
      figure("Duration p95", secondsText(summary.duration.p95)),
      figure("Queue wait p50", secondsText(summary.queue_wait.p50)),
      figure("Queue wait p95", secondsText(summary.queue_wait.p95)),
      figure("SLA violations", sla.violations === undefined ? "n/a" : sla.violations),
      figure("SLA compliance", percentText(sla.compliance)),
    ];
    replaceChildren($("figures"), figures);
    const steps = Object.entries(summary.steps || {}).map(([type, stats]) =>
      el(
        "tr",
        null,
        el("td", null, type),
        el("td", null, stats.total),
        el("td", null, percentText(stats.failure_rate)),
        el("td", null, secondsText(stats.duration.p50)),
        el("td", null, secondsText(stats.duration.p95)),
      ),
    );
    if (!steps.length) steps.push(el("tr", null, el("td", { attrs: { colspan: 5 } }, "No step ended in the window.")));
    replaceChildren($("step-types").tBodies[0], steps);
    const queues = summary.queues && typeof summary.queues === "object" ? Object.entries(summary.queues) : [];
    $("queues").hidden = queues.length === 0;
    replaceChildren(
      $("queues").tBodies[0],
      queues.map(([name, q]) =>
        el("tr", null, el("td", null, name), el("td", null, q.depth ?? "n/a"), el("td", null, secondsText(q.oldest_age ?? null))),
      ),
    );
  }

  function drawHealth(health, alerts) {
    const verdict = words(HEALTH_WORDS, health.status);
    const badge = $("health");
    badge.textContent = `health: ${verdict}`;
    badge.className = `badge status-${cssToken(health.status)}`;
    const components = [];
    for (const [key, entries] of Object.entries(health.checks || {})) {
      for (const entry of entries) {
        if (entry.componentType !== "component") continue;
        components.push(
          el(
            "li",
            null,
            el("span", { className: `status-${cssToken(entry.status)}` }, words(HEALTH_WORDS, entry.status)),
            ` ${entry.componentId || key}`,
            entry.output ? `: ${entry.output}` : "",
          ),
        );
      }
    }
    if (!components.length) components.push(el("li", { className: "muted" }, "No component checks."));
    replaceChildren($("components"), components);
    const items = alerts.map((alert) =>
      el(
        "li",
        null,
        el("span", { className: `severity-${cssToken(alert.severity)}` }, `${alert.severity} alert`),
        ` ${alert.rule}: ${alert.message}`,
      ),
    );
    if (!items.length) items.push(el("li", { className: "muted" }, "No alert firing."));
    replaceChildren($("alerts"), items);
  }

  function drawGroup(group) {
    const table = $("members");
    if (!group.group) {
      $("group-note").textContent = "This Monitor is not part of a process group.";
      table.hidden = true;
      return;
    }
    const members = group.members || [];
    const alive = members.filter((m) => m.alive).length;
    $("group-note").textContent = `${members.length} members, ${alive} alive.`;
    table.hidden = false;
    replaceChildren(
      table.tBodies[0],
      members.map((m) =>
        el(
          "tr",
          null,
          el("td", null, m.self ? `${m.pid} (this process)` : m.pid),
          el("td", { className: m.alive ? "alive" : "gone" }, m.alive ? "alive" : "gone"),
          el("td", null, m.published_at ? clockText(m.published_at) : "n/a"),
          el("td", null, m.running),
          el("td", null, m.pending),
          el("td", null, m.alerts === null || m.alerts === undefined ? "n/a" : m.alerts),
        ),
      ),
    );
  }

  // ------------------------------------------------------------------ events
  function describe(event) {
    const data = event.data || {};
    const bits = [];
    for (const key of ["name", "step", "outcome", "duration", "message", "reason", "rule"]) {
      if (data[key] === undefined || data[key] === null) continue;
      const value = key === "duration" && typeof data[key] === "number" ? secondsText(data[key]) : data[key];
      bits.push(`${key}=${value}`);
    }
    return bits.join(" ");
  }

  function eventItem(event) {
    const item = el(
      "li",
      null,
      `${clockText(event.timestamp)} #${event.seq} ${event.type}`,
      event.execution_id ? ` ${event.execution_id}` : "",
      " ",
      el("span", { className: "muted" }, describe(event)),
    );
    item.setAttribute("data-seq", event.seq);
    return item;
  }

  function showEvents(events, replace) {
    const list = $("events");
    if (replace) replaceChildren(list, []);
    for (const event of events) list.prepend(eventItem(event));
    while (list.childElementCount > EVENTS_KEPT) list.lastElementChild.remove();
  }

  function onEvent(event) {
    state.lastSeq = Math.max(state.lastSeq, event.seq);
    showEvents([event], false);
    refreshExecutions.soon(FAST_MS);
    if (state.openId !== null && event.execution_id === state.openId) refreshDetail.soon(FAST_MS);
    if (!event.type.startsWith("step.")) refreshOverview.soon(SLOW_MS);
  }

  function setConnection(kind, text) {
    const badge = $("connection");
    badge.textContent = text;
    badge.className = `badge status-${kind === "live" ? "pass" : kind === "error" ? "fail" : "warn"}`;
    badge.setAttribute("data-state", kind);
  }

  // Server-Sent Events over fetch: the token goes in a header, never in the URL.
  function parseFrame(frame) {
    let data = "";
    let id = null;
    let type = "message";
    for (const line of frame.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
      else if (field === "event") type = value;
    }
    return data ? { id, type, data } : null;
  }

  async function readStream(generation) {
    const history = await getJson(`events?format=json&limit=${EVENTS_KEPT}`);
    const events = history.events || [];
    state.lastSeq = events.length ? events[events.length - 1].seq : 0;
    showEvents(events, true);
    const controller = new AbortController();
    state.stream = controller;
    const response = await request("events", {
      headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(state.lastSeq) }),
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 401) throw new Unauthorized("token refused");
    if (!response.ok || !response.body) throw new Error(`event stream: HTTP ${response.status}`);
    setConnection("live", "connection: live");
    state.live = true;
    state.polledAt = Date.now(); // the refreshes just below
    refreshExecutions();
    refreshOverview();
    refreshDetail();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== state.generation) {
        state.live = false;
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const frame = parseFrame(buffer.slice(0, cut));
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        if (frame === null) continue;
        try {
          onEvent(JSON.parse(frame.data));
        } catch (error) {
          // a frame this page does not understand is skipped, the stream goes on
        }
      }
    }
  }

  async function follow(generation) {
    let delay = RETRY_MIN_MS;
    while (generation === state.generation) {
      const since = Date.now();
      try {
        await readStream(generation);
      } catch (error) {
        state.live = false;
        if (error instanceof Unauthorized) {
          askForToken("The token was refused. Enter it again.");
          return;
        }
        if (!(error instanceof Offline) && !(error && error.name === "AbortError")) {
          console.warn("stepwatch dashboard: event stream:", error);
        }
      }
      if (generation !== state.generation) return;
      if (Date.now() - since > RETRY_MAX_MS) delay = RETRY_MIN_MS; // it had been up a while
      setConnection("retry", `connection: lost, reconnecting in ${Math.ceil(delay / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RETRY_MAX_MS);
      setConnection("retry", "connection: reconnecting");
    }
  }

  // ------------------------------------------------------------------- start
  function askForToken(message) {
    state.generation += 1;
    if (state.stream) state.stream.abort();
    state.token = null;
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setConnection("token", "connection: waiting for the token");
    $("token").focus();
  }

  function start() {
    $("login").hidden = true;
    $("main").hidden = false;
    state.generation += 1;
    setConnection("connecting", "connection: connecting");
    follow(state.generation);
    if (!state.started) {
      state.started = true;
      setInterval(() => {
        if ($("main").hidden) return;
        refreshOverview();
        // While the stream is live every change to an execution arrives as an event
        // (and triggers a refresh); the slow poll only catches up with the clock.
        if (!state.live || Date.now() - state.polledAt >= LIVE_POLL_MS) {
          state.polledAt = Date.now();
          refreshExecutions();
          refreshDetail();
        }
      }, POLL_MS);
      setInterval(tickEtas, 1000);
    }
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    state.token = value;
    $("token").value = "";
    start();
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("filter").addEventListener("input", () => {
    state.query = $("filter").value.trim();
    state.offset = 0;
    refreshExecutions.soon(FAST_MS);
  });
  $("state").addEventListener("change", () => {
    state.stateFilter = $("state").value;
    state.offset = 0;
    refreshExecutions();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    refreshExecutions();
  });
  $("next").addEventListener("click", () => {
    if (state.offset + PAGE_SIZE < state.matched) state.offset += PAGE_SIZE;
    refreshExecutions();
  });
  $("detail-close").addEventListener("click", () => {
    state.openId = null;
    $("detail").hidden = true;
    for (const row of $("executions").tBodies[0].rows) row.classList.remove("selected");
  });

  if (needsToken) askForToken("");
  else start();
})();
