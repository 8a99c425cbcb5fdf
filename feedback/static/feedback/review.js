// The review queue's keys: c/f/e/n give a verdict, s skips, j/k move, x selects for a bulk verdict,
// i writes a note, m (or a drag across a plot) marks a missed range, o opens an item, r loads the next page.
// Verdicts and missed ranges go to the REST API (session and CSRF token); a skip gives the claim back.
(() => {
  "use strict";
  const VERDICTS = { c: "confirmed", f: "false_positive", e: "expected", n: "new_normal" };
  const NAMES = { confirmed: "Confirmed", false_positive: "False positive", expected: "Expected change",
                  new_normal: "New normal" };
  const main = document.querySelector("main[data-page]");
  if (!main) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const items = [...main.querySelectorAll(".item")];
  let current = null;

  function say(text, bad = false) {
    const flash = document.getElementById("flash");
    flash.textContent = text;
    flash.className = bad ? "shown bad" : "shown";
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { flash.className = ""; }, 5000);
  }

  function show(item) {
    if (!item) return;
    items.forEach((el) => el.classList.toggle("current", el === item));
    current = item;
    item.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const i = items.indexOf(current) + step;
    if (i >= 0 && i < items.length) return show(items[i]);
    const url = step > 0 ? main.dataset.next : main.dataset.previous;
    if (url) location.href = url;
  }

  // After a verdict or a skip: the next item still waiting on this page, else the next page.
  function onward() {
    const at = items.indexOf(current);
    const waiting = [...items.slice(at + 1), ...items.slice(0, at)].find((el) => !el.classList.contains("done"));
    if (waiting) return show(waiting);
    if (main.dataset.page === "item") {
      setTimeout(() => { location.href = main.dataset.next || main.dataset.queue; }, 400);
    } else {
      document.getElementById("page-done").hidden = false;
    }
  }

  function targets() {
    const picked = items.filter((el) => el.querySelector(".pick").checked && !el.classList.contains("done"));
    return picked.length ? picked : [current];
  }

  function finish(item, text) {
    item.classList.add("done");
    item.classList.remove("picked");
    item.querySelector(".pick").checked = false;
    item.querySelector(".verdict-badge").textContent = text;
  }

  function problem(data, status) {
    const parts = Object.entries(data).map(([key, value]) =>
      key === "detail" ? String(value) : `${key}: ${[].concat(value).join(" ")}`);
    return parts.join("; ") || `The server answered ${status}.`;
  }

  async function post(url, body) {
    const json = !(body instanceof URLSearchParams);
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json", ...(json ? { "Content-Type": "application/json" } : {}) },
      body: json ? JSON.stringify(body) : body,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(problem(data, response.status));
    return data;
  }

  async function judge(verdict) {
    const chosen = targets();
    const ids = chosen.map((el) => Number(el.dataset.id));
    const note = (current.querySelector(".note") || {}).value || "";
    try {
      if (ids.length === 1) await post(chosen[0].dataset.labelUrl, { verdict, note: note.trim() });
      else await post(main.dataset.bulkUrl, { anomalies: ids, verdict, note: note.trim() });
    } catch (error) {
      return say(error.message, true);
    }
    chosen.forEach((el) => finish(el, NAMES[verdict]));
    say(`${NAMES[verdict]}: ${ids.length} incident${ids.length > 1 ? "s" : ""}.`);
    onward();
  }

  async function skip() {
    const chosen = targets();
    try {
      await post(main.dataset.skipUrl, new URLSearchParams(chosen.map((el) => ["anomalies", el.dataset.id])));
    } catch (error) {
      return say(error.message, true);
    }
    chosen.forEach((el) => finish(el, "Skipped: back in the queue"));
    onward();
  }

  function pick(item) {
    const box = item.querySelector(".pick");
    box.checked = !box.checked;
    item.classList.toggle("picked", box.checked);
  }

  // --- missed ranges: the SVG carries its time scale (data-t0/t1 over data-left/width) ----------------
  function timeAt(svg, clientX) {
    const x0 = new DOMPoint(clientX, 0).matrixTransform(svg.getScreenCTM().inverse()).x;
    const { left, width, t0, t1 } = Object.fromEntries(Object.entries(svg.dataset).map(([k, v]) => [k, +v]));
    const x = Math.min(Math.max(x0, left), left + width);
    return { x, t: t0 + ((x - left) / width) * (t1 - t0) };
  }

  function iso(seconds) {
    return new Date(Math.round(seconds) * 1000).toISOString().replace(".000Z", "Z");
  }

  function missedForm(item) {
    const form = item.querySelector("form.missed");
    if (!form) {
      say("Missed anomalies are marked on a series, by an analyst of its team.", true);
      return null;
    }
    form.hidden = false;
    return form;
  }

  function draggable(item) {
    const svg = item.querySelector(".plot svg[data-t0]");
    if (!svg || !item.querySelector("form.missed")) return;
    let start = null;
    let range = null;
    const place = (a, b) => {
      range.setAttribute("x", Math.min(a.x, b.x));
      range.setAttribute("width", Math.max(Math.abs(b.x - a.x), 1));
    };
    svg.addEventListener("mousedown", (event) => {
      event.preventDefault();
      show(item);
      start = timeAt(svg, event.clientX);
      range?.remove();
      range = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      range.setAttribute("class", "missed-range");
      range.setAttribute("y", svg.dataset.top);
      range.setAttribute("height", svg.dataset.height);
      svg.appendChild(range);
      place(start, start);
    });
    svg.addEventListener("mousemove", (event) => { if (start) place(start, timeAt(svg, event.clientX)); });
    window.addEventListener("mouseup", (event) => {
      if (!start) return;
      const end = timeAt(svg, event.clientX);
      place(start, end);
      const form = missedForm(item);
      form.elements.start.value = iso(Math.min(start.t, end.t));
      form.elements.end.value = iso(Math.max(start.t, end.t));
      start = null;
    });
  }

  async function markMissed(form) {
    const item = form.closest(".item");
    const { start, end, note } = form.elements;
    try {
      await post(item.dataset.missedUrl, {
        detector: Number(item.dataset.detector), start: start.value.trim(), end: end.value.trim(), note: note.value.trim(),
      });
    } catch (error) {
      return say(error.message, true);
    }
    say(`Marked a missed anomaly from ${start.value} to ${end.value}.`);
    item.querySelector(".missed-range")?.classList.add("saved");
    form.reset();
    form.hidden = true;
  }

  // --- wiring ---------------------------------------------------------------------------------------------
  const KEYS = {
    s: skip,
    j: () => move(1),
    k: () => move(-1),
    x: () => pick(current),
    i: () => current.querySelector(".note")?.focus(),
    m: () => missedForm(current)?.elements.start.focus(),
    o: () => { location.href = current.dataset.url; },
    r: () => { if (main.dataset.reload) location.href = main.dataset.reload; },
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !current) return;
    if (event.target.closest("input, textarea, select")) {
      const leave = event.key === "Escape" || (event.key === "Enter" && event.target.classList.contains("note"));
      if (leave) {
        event.preventDefault();
        event.target.blur();
      }
      return;
    }
    const action = VERDICTS[event.key] ? () => judge(VERDICTS[event.key]) : KEYS[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  main.addEventListener("click", (event) => {
    const item = event.target.closest(".item");
    if (!item) return;
    show(item);
    const button = event.target.closest("button[data-verdict], button[data-action]");
    if (event.target.classList.contains("pick")) item.classList.toggle("picked", event.target.checked);
    if (button?.dataset.verdict) judge(button.dataset.verdict);
    else if (button?.dataset.action === "skip") skip();
  });

  main.addEventListener("submit", (event) => {
    const form = event.target.closest("form.missed");
    if (!form) return;
    event.preventDefault();
    markMissed(form);
  });

  items.forEach(draggable);
  show(items.find((el) => !el.classList.contains("done")) || items[0]);
})();
