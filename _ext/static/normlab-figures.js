/* normlab figures on the site (loaded deferred on pages with a figure, by _ext/normlab_site.py).
 *
 * normlab.nb.show stores each figure as a script that only queues it on window.normlabFigures.
 * This file:
 *  - draws each queued figure, one per task, when it comes within a screen height of the
 *    viewport (after the page's first paint), loading plotly.js for the first: the smallest
 *    partial bundle that has the page's trace types, never a blocking script;
 *  - swaps the palette to its dark-theme variant (the map travels with each figure) when the
 *    page's theme is dark, and back, following the theme switch;
 *  - re-lays a figure out below NARROW_PX: smaller fonts, wrapped titles, legend under the
 *    plot, plotly's own sliders/buttons hidden (the native controls below take over);
 *  - adds under every figure with a slider or buttons native controls that drive it: an
 *    <input type="range"> per slider and a group of <button>s per menu, reachable by Tab and
 *    operated with arrow keys / Enter / Space, kept in step with plotly's controls.
 */
(function () {
  "use strict";
  const NARROW_PX = 600;
  const SCRIPT = document.currentScript;
  const queue = (window.normlabFigures = window.normlabFigures || []);
  const drawn = [];

  function currentTheme() {
    return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
  }

  function recolour(value, map) {
    if (Array.isArray(value)) return value.map((v) => recolour(v, map));
    if (value && typeof value === "object") {
      const out = {};
      for (const [k, v] of Object.entries(value)) out[k] = recolour(v, map);
      return out;
    }
    return typeof value === "string" && map[value.toLowerCase()] ? map[value.toLowerCase()] : value;
  }

  function inverse(map) {
    return Object.fromEntries(Object.entries(map).map(([k, v]) => [v, k]));
  }

  function getPath(obj, path) {
    return path.split(".").reduce((o, key) => {
      const m = /^(\w+)\[(\d+)\]$/.exec(key);
      if (o == null) return undefined;
      return m ? (o[m[1]] || [])[+m[2]] : o[key];
    }, obj);
  }

  // ---- narrow screens ---------------------------------------------------------------------

  function plainLength(text) {
    return text.replace(/<[^>]+>/g, "").length;
  }

  /** Break ``text`` at spaces into lines of at most ``width`` visible characters. */
  function wrap(text, width) {
    return String(text).split(/<br\s*\/?>/i).map((line) => {
      const lines = [""];
      for (const word of line.split(" ")) {
        const last = lines[lines.length - 1];
        if (last && plainLength(last + " " + word) > width) lines.push(word);
        else lines[lines.length - 1] = last ? last + " " + word : word;
      }
      return lines.join("<br>");
    }).join("<br>");
  }

  function columns(layout) {
    const starts = new Set();
    for (const [key, axis] of Object.entries(layout)) {
      if (/^xaxis\d*$/.test(key) && axis && axis.domain) starts.add(axis.domain[0]);
    }
    return Math.max(1, starts.size);
  }

  /** Relayout updates (``{path: value}``) that fit ``layout`` into ``width`` px. */
  function narrowUpdates(layout, width) {
    const u = {"font.size": 11, "margin.l": 48, "margin.r": 12, "margin.b": 50};
    const titleText = getPath(layout, "title.text");
    let titleLines = 0;
    if (titleText) {
      const wrapped = wrap(titleText, Math.floor((width - 24) / 7.5));
      titleLines = wrapped.split("<br>").length;
      Object.assign(u, {"title.text": wrapped, "title.font.size": 13, "title.x": 8 / width,
        "title.xanchor": "left", "title.xref": "container", "title.yref": "container",
        "title.y": 1, "title.yanchor": "top", "title.pad.t": 20});
    }
    const annotations = layout.annotations || [];
    // A subplot title stays inside its column, clear of the tick labels at its edges.
    const colChars = Math.floor((width / columns(layout) - 36) / 5.8);
    let topNotes = false;
    annotations.forEach((a, i) => {
      u[`annotations[${i}].font.size`] = 10;
      if (a.text) u[`annotations[${i}].text`] = wrap(a.text, Math.max(colChars, 8));
      if (a.yref === "paper" && a.y >= 1) topNotes = true;
    });
    u["margin.t"] = 20 + titleLines * 17 + (topNotes ? 34 : 8);
    const height = layout.height || 450;
    const plotHeight = height - u["margin.t"] - u["margin.b"];
    Object.assign(u, {"legend.orientation": "h", "legend.x": 0, "legend.xanchor": "left",
      "legend.yref": "paper", "legend.y": -62 / plotHeight, "legend.yanchor": "top",
      "legend.font.size": 10});
    (layout.sliders || []).forEach((_, k) => { u[`sliders[${k}].visible`] = false; });
    (layout.updatemenus || []).forEach((_, k) => { u[`updatemenus[${k}].visible`] = false; });
    return u;
  }

  /** Text-labelled points (roofline) cannot keep their labels on a phone: there the labels
   * go to the legend instead. Returns restyle updates {attr: [values per trace]}. */
  function narrowTraces(data, narrow) {
    const labelled = data.map((t) => /text/.test(t.mode || "") && !!t.name);
    return {
      mode: data.map((t, i) => labelled[i] ? (narrow ? t.mode.replace(/\+?text\+?/, "") ||
        "markers" : t.mode) : undefined),
      showlegend: data.map((t, i) => labelled[i] ? (narrow ? true : t.showlegend) : undefined),
    };
  }

  /** Below the lowest x-axis text (ticks may be rotated), in px: the legend, then notes
   * placed under the plot (e.g. a benchmark's provenance), with the bottom margin to fit. */
  function settleNarrow(gd) {
    const fl = gd._fullLayout;
    const top = gd.getBoundingClientRect().top + fl._size.t;
    const plotBottom = top + fl._size.h;
    let below = 0;
    gd.querySelectorAll(".xaxislayer-above text, .g-xtitle text, .g-x2title text, " +
        ".g-x3title text").forEach((t) => {
      const r = t.getBoundingClientRect();
      if (r.height) below = Math.max(below, r.bottom - plotBottom);
    });
    const legendHeight = fl.showlegend && fl.legend ? fl.legend._height || 0 : 0;
    const notes = (gd.layout.annotations || []).map((a, i) => [a, i])
      .filter(([a]) => a.yref === "paper" && a.y < 0);
    const noteHeight = notes.reduce((h, [a]) =>
      Math.max(h, 14 * String(a.text || "").split("<br>").length), 0);
    const legendTop = below + 10;
    const notesTop = legendTop + legendHeight + (legendHeight ? 8 : 0);
    const bottom = Math.ceil(notesTop + noteHeight + 10);
    const plotHeight = fl.height - fl._size.t - bottom;
    const u = {"margin.b": bottom, "legend.y": -legendTop / plotHeight};
    notes.forEach(([, i]) => {
      u[`annotations[${i}].y`] = -notesTop / plotHeight;
      u[`annotations[${i}].yanchor`] = "top";
    });
    // Axis titles no longer than their axis (x: plot width, y: plot height), 10 px font.
    for (const key of Object.keys(gd.layout)) {
      const axis = /^([xy])axis\d*$/.exec(key);
      const text = axis && getPath(gd.layout, `${key}.title.text`);
      if (!text) continue;
      const wide = getPath(gd._normlab.wideLayout, `${key}.title.text`) || text;
      const length = axis[1] === "x" ? fl._size.w : plotHeight;
      u[`${key}.title.text`] = wrap(wide, Math.max(12, Math.floor(length / 5.6)));
      u[`${key}.title.font.size`] = 10;
    }
    const state = gd._normlab;
    for (const path of Object.keys(u)) {
      if (!(path in state.restore)) {
        const value = getPath(state.wideLayout, path);
        state.restore[path] = value === undefined ? null : value;
      }
    }
    const same = Object.entries(u).every(([path, value]) => {
      const now = getPath(gd.layout, path);
      return typeof value === "number" ? Math.abs((now || 0) - value) < 0.01 * Math.max(1,
        Math.abs(value)) : now === value;
    });
    return same ? Promise.resolve() : Plotly.relayout(gd, u);
  }

  function applyUpdates(layout, updates) {
    for (const [path, value] of Object.entries(updates)) {
      const keys = path.split(".");
      let o = layout;
      keys.forEach((key, i) => {
        const m = /^(\w+)\[(\d+)\]$/.exec(key);
        const last = i === keys.length - 1;
        if (m) {
          o[m[1]] = o[m[1]] || [];
          if (last) o[m[1]][+m[2]] = value;
          else o = o[m[1]][+m[2]] = o[m[1]][+m[2]] || {};
        } else if (last) {
          o[key] = value;
        } else {
          o = o[key] = (o[key] && typeof o[key] === "object") ? o[key] : {};
        }
      });
    }
    return layout;
  }

  function isNarrow(gd) {
    return gd.clientWidth > 0 && gd.clientWidth < NARROW_PX;
  }

  /** Switch ``gd`` between its wide (as stored) and narrow layouts when its width asks. */
  function fitWidth(gd) {
    const state = gd._normlab;
    const narrow = isNarrow(gd);
    if (narrow === state.narrow) return Promise.resolve();
    state.narrow = narrow;
    let updates;
    if (narrow) {
      updates = narrowUpdates(state.wideLayout, gd.clientWidth);
      state.restore = {};
      for (const path of Object.keys(updates)) {
        const value = getPath(state.wideLayout, path);
        state.restore[path] = value === undefined ? null : value;
      }
    } else {
      updates = Object.assign({}, state.restore);
    }
    // Controls shown or hidden by a button (chapter 4) keep the state the buttons chose.
    state.controlVisible.forEach((shown, path) => { updates[path] = narrow ? false : shown; });
    return Plotly.restyle(gd, narrowTraces(narrow ? gd.data : state.spec.figure.data, narrow))
      .then(() => Plotly.relayout(gd, updates))
      .then(() => narrow ? settleNarrow(gd) : null);
  }

  // ---- theme ------------------------------------------------------------------------------

  function followTheme(gd) {
    const state = gd._normlab;
    const theme = currentTheme();
    if (theme === state.theme) return Promise.resolve();
    const map = theme === "dark" ? state.spec.dark : inverse(state.spec.dark);
    state.theme = theme;
    return Plotly.react(gd, recolour(gd.data, map), recolour(gd.layout, map), state.spec.config);
  }

  // ---- native controls --------------------------------------------------------------------

  const VISIBILITY = /^(sliders|updatemenus)\[\d+\]\.visible$/;

  /** Run item ``i`` of slider/menu ``k`` (``kind`` "sliders" or "updatemenus") as plotly
   * would when it is clicked, and mark it active. */
  function execute(gd, kind, k, i) {
    const state = gd._normlab;
    const control = gd.layout[kind][k];
    const item = (control.steps || control.buttons)[i];
    const args = JSON.parse(JSON.stringify(item.args || []));
    const active = {[`${kind}[${k}].active`]: i};
    const layoutArgIndex = {relayout: 0, update: 1}[item.method];
    if (layoutArgIndex !== undefined) {
      const layoutArgs = args[layoutArgIndex] || {};
      for (const path of Object.keys(layoutArgs)) {
        if (!VISIBILITY.test(path)) continue;
        state.controlVisible.set(path, layoutArgs[path]);
        if (state.narrow) layoutArgs[path] = false;
      }
      args[layoutArgIndex] = Object.assign(layoutArgs, active);
    }
    if (item.method === "update") return Plotly.update(gd, args[0] || {}, args[1], args[2]);
    if (item.method === "relayout") return Plotly.relayout(gd, args[0]);
    const run = item.method === "restyle" ? Plotly.restyle(gd, ...args) : Promise.resolve();
    return run.then(() => Plotly.relayout(gd, active));
  }

  function plainText(html) {
    const div = document.createElement("div");
    div.innerHTML = String(html == null ? "" : html);
    return div.textContent.trim();
  }

  function sliderName(slider, k, count) {
    const prefix = plainText(getPath(slider, "currentvalue.prefix")).replace(/[:=]\s*$/, "");
    return prefix.trim() || (count > 1 ? `slider ${k + 1}` : "slider");
  }

  function addControls(gd) {
    const sliders = gd.layout.sliders || [];
    const menus = gd.layout.updatemenus || [];
    if (!sliders.length && !menus.length) return;
    const figureName = gd.getAttribute("aria-label") || "figure";
    const box = document.createElement("div");
    box.className = "nl-figure-controls";
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", `Controls of the figure: ${figureName}`);
    const sync = [];
    menus.forEach((menu, k) => {
      const group = document.createElement("div");
      group.className = "nl-buttons";
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", menus.length > 1 ? `view ${k + 1}` : "view");
      const buttons = menu.buttons.map((item, i) => {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = plainText(item.label) || `option ${i + 1}`;
        button.addEventListener("click", () => execute(gd, "updatemenus", k, i));
        button.addEventListener("keydown", (event) => {
          const step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[event.key];
          if (!step) return;
          event.preventDefault();
          const next = buttons[(i + step + buttons.length) % buttons.length];
          next.focus();
          next.click();
        });
        group.appendChild(button);
        return button;
      });
      box.appendChild(group);
      sync.push(() => {
        const active = gd.layout.updatemenus[k].active || 0;
        buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === active)));
      });
    });
    sliders.forEach((slider, k) => {
      const label = document.createElement("label");
      label.className = "nl-slider";
      const name = document.createElement("span");
      name.textContent = sliderName(slider, k, sliders.length);
      const input = document.createElement("input");
      input.type = "range";
      input.min = 0;
      input.max = slider.steps.length - 1;
      input.step = 1;
      input.setAttribute("aria-label", name.textContent);
      const output = document.createElement("output");
      input.addEventListener("input", () => execute(gd, "sliders", k, +input.value));
      label.append(name, input, output);
      box.appendChild(label);
      const path = `sliders[${k}].visible`;
      if (!gd._normlab.controlVisible.has(path)) {
        // As stored: on a phone the drawn layout hides every plotly slider.
        gd._normlab.controlVisible.set(path, getPath(gd._normlab.wideLayout, path) !== false);
      }
      sync.push(() => {
        const s = gd.layout.sliders[k];
        const active = s.active || 0;
        const text = plainText(s.steps[active].label);
        input.value = active;
        input.setAttribute("aria-valuetext", text);
        output.textContent = text;
        label.hidden = gd._normlab.controlVisible.get(path) === false;
      });
    });
    // Only sliders a button shows or hides are tracked; drop the others.
    gd._normlab.controlVisible.forEach((_, path) => {
      const m = /^sliders\[(\d+)\]/.exec(path);
      const toggled = menus.some((menu) => menu.buttons.some((b) =>
        (b.args || []).some((a) => a && typeof a === "object" && !Array.isArray(a) && path in a)));
      if (m && !toggled) gd._normlab.controlVisible.delete(path);
    });
    const update = () => sync.forEach((f) => f());
    for (const event of ["plotly_sliderchange", "plotly_buttonclicked", "plotly_relayout",
      "plotly_update", "plotly_restyle", "plotly_react"]) {
      gd.on(event, () => {
        if (event === "plotly_buttonclicked" || event === "plotly_update" ||
            event === "plotly_relayout") {
          // plotly's own buttons may show or hide a slider (wide layout only).
          if (!gd._normlab.narrow) {
            gd._normlab.controlVisible.forEach((_, path) => {
              gd._normlab.controlVisible.set(path, getPath(gd.layout, path) !== false);
            });
          }
        }
        update();
      });
    }
    update();
    gd.insertAdjacentElement("afterend", box);
  }

  // ---- drawing ----------------------------------------------------------------------------

  function nextTask() {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }

  async function draw(spec) {
    const gd = document.getElementById(spec.id);
    if (!gd || gd._normlab) return;
    const started = performance.now();  // reported as a "normlab draw <id>" measure
    const theme = currentTheme();
    const map = theme === "dark" ? spec.dark : {};
    const layout = recolour(spec.figure.layout || {}, map);
    const state = {spec, theme, narrow: isNarrow(gd), restore: {},
      wideLayout: JSON.parse(JSON.stringify(layout)), controlVisible: new Map()};
    gd._normlab = state;
    if (state.narrow) {
      const updates = narrowUpdates(layout, gd.clientWidth);
      for (const path of Object.keys(updates)) {
        const value = getPath(layout, path);
        state.restore[path] = value === undefined ? null : value;
      }
      applyUpdates(layout, updates);
    }
    const data = recolour(spec.figure.data || [], map);
    if (state.narrow) {
      const traces = narrowTraces(data, true);
      data.forEach((t, i) => {
        if (traces.mode[i] !== undefined) Object.assign(t, {mode: traces.mode[i], showlegend: true});
      });
    }
    await Plotly.newPlot(gd, data, layout, spec.config);
    if (state.narrow) await settleNarrow(gd);
    addControls(gd);
    drawn.push(gd);
    try {
      performance.measure(`normlab draw ${spec.id}`, {start: started, end: performance.now()});
    } catch (error) { /* User Timing level 3 missing: no measure, the figure is drawn */ }
  }

  // Figures wait (``waiting``, page order) until they come within a screen height of the
  // viewport; then they join ``due`` and are drawn one per task, plotly.js being loaded for
  // the first. A page never loads plotly.js or draws what the reader has not come near (the
  // bundle's evaluation and a 3-D scene each cost a long task on a slow machine).
  const waiting = new Map();  // div -> spec
  const due = [];
  let drawing = null;
  let plotly = null;
  const observer = new IntersectionObserver((entries) => makeDue(
    entries.filter((e) => e.isIntersecting).map((e) => e.target)), {rootMargin: "100% 0px"});

  async function drawDue() {
    do {
      await nextTask();  // also: ``drawing`` is set before this run can end
      if (due.length) await loadPlotly();
      if (due.length) await draw(due.shift());
    } while (due.length);
    drawing = null;
  }

  function makeDue(gds) {
    for (const gd of gds) {
      if (!waiting.has(gd)) continue;
      due.push(waiting.get(gd));
      waiting.delete(gd);
      observer.unobserve(gd);
    }
    drawing = drawing || drawDue();
    return drawing;
  }

  function watchQueue() {
    while (queue.length) {
      const spec = queue.shift();
      const gd = document.getElementById(spec.id);
      if (!gd || gd._normlab || waiting.has(gd)) continue;
      waiting.set(gd, spec);
      observer.observe(gd);
    }
  }

  window.normlabDrawFigures = watchQueue;

  // The smallest of plotly.js's partial bundles (``data-bundles``, smallest first, from
  // _ext/normlab_site.py) that has every trace type of the page's figures; else the full one.
  function bundleFor(specs) {
    const types = new Set(specs.flatMap((s) => (s.figure.data || []).map((t) => t.type || "scatter")));
    const bundles = JSON.parse(SCRIPT.dataset.bundles || "[]");
    const fits = bundles.find(([, has]) => [...types].every((t) => has.includes(t)));
    return new URL(fits ? fits[0] : "plotly.min.js", SCRIPT.src).href;
  }

  function loadPlotly() {
    plotly = plotly || new Promise((resolve) => {
      if (window.Plotly) return resolve();
      const script = document.createElement("script");
      script.src = bundleFor([...due, ...waiting.values()]);
      script.async = true;
      script.addEventListener("load", resolve);
      document.head.appendChild(script);
    });
    return plotly;
  }

  // Figures are watched after the page's first paint: two animation frames, then a task.
  const watching = new Promise((resolve) => requestAnimationFrame(() =>
    requestAnimationFrame(() => setTimeout(resolve, 0)))).then(watchQueue);

  /** Draw every figure now, wherever it is (tests, screenshots); resolves when all are. */
  window.normlabDrawAll = () => watching.then(() => makeDue([...waiting.keys()]));

  new MutationObserver(() => drawn.forEach(followTheme)).observe(
    document.documentElement, {attributes: true, attributeFilter: ["data-theme"]});
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => drawn.forEach(fitWidth), 150);
  });
})();
