// featviz Microscope: sorting a layer's units, search, and links to units that are not built
// (the server renders those on demand; a static copy cannot, so it shows them as plain text).
"use strict";

const served = location.protocol === "http:" || location.protocol === "https:";

// A layer page writes its first tiles as HTML and the others as data (#more-units), added here
// in slices once the page has loaded, so that a page of thousands of units opens at once.
let moreUnits = null;
const idle = (fn) => (window.requestIdleCallback ? requestIdleCallback(fn, { timeout: 500 }) : setTimeout(fn, 50));

function tile(layer, [channel, thumb, activation, score, trust, correlation]) {
  const figure = document.createElement("figure");
  Object.assign(figure.dataset, { channel, activation, score, trust, correlation });
  figure.innerHTML = `<a href="../units/${layer}/${channel}.html"><img loading="lazy" src="../${thumb}" ` +
    `width="96" height="96" alt="${layer}:${channel}"></a><figcaption>${channel}</figcaption>`;
  return figure;
}

function addUnits(count) {
  const grid = document.getElementById("units");
  if (!grid || !moreUnits || !moreUnits.length) return;
  const part = document.createDocumentFragment();
  for (const row of moreUnits.splice(0, count)) part.appendChild(tile(grid.dataset.layer, row));
  grid.appendChild(part);
  if (moreUnits.length) idle(() => addUnits(count));  // in slices, when idle: the page stays responsive
  else document.body.dataset.units = "all";
}

function startUnits() {
  const data = document.getElementById("more-units");
  if (!data) { document.body.dataset.units = "all"; return; }
  moreUnits = JSON.parse(data.textContent);
  // after the load event: the first screen's images are not kept waiting by the others
  const go = () => idle(() => addUnits(120));
  if (document.readyState === "complete") go();
  else window.addEventListener("load", go);
}

function sortUnits(key) {
  const grid = document.getElementById("units");
  if (!grid) return;
  addUnits(Infinity);  // every tile first
  const tiles = Array.from(grid.children);
  const value = (t) => {
    const v = t.dataset[key];
    return v === undefined || v === "" ? -Infinity : Number(v);
  };
  tiles.sort((a, b) => (key === "channel" ? value(a) - value(b) : value(b) - value(a)));
  for (const t of tiles) grid.appendChild(t);
}

function linkUnbuilt() {
  for (const a of document.querySelectorAll("a[data-href]")) {
    if (served) a.setAttribute("href", a.dataset.href);
  }
  const more = document.getElementById("unbuilt");
  if (more && served) more.hidden = false;
}

function unitLink(root, layer, channel, thumb) {
  const href = `${root}units/${layer}/${channel}.html`;
  const img = thumb ? `<img src="${root}${thumb}" width="64" height="64" alt="${layer}:${channel}">` : "";
  return `<figure><a href="${href}">${img}<figcaption>${layer}:${channel}</figcaption></a></figure>`;
}

function pageLink(root, href, thumb, caption) {
  const img = thumb ? `<img src="${root}${thumb}" width="64" height="64" alt="${caption}">` : "";
  return `<figure><a href="${root}${href}">${img}<figcaption>${caption}</figcaption></a></figure>`;
}

function search(root) {
  const box = document.getElementById("results");
  if (!box || !window.FEATVIZ_INDEX) return;
  const index = window.FEATVIZ_INDEX;
  const concepts = index.concepts || [];  // a layer's concept pages: {layer, page, concepts: [{j, page, thumb, drives}]}
  const atlases = index.atlases || [];  // {name, layer, page, target}
  const q = (new URLSearchParams(location.search).get("q") || "").trim();
  document.querySelector("nav input[name=q]").value = q;
  if (!q) { box.innerHTML = "<p>Search a unit (blocks.5:51), a layer (blocks.5), a class (hen), concepts or atlas.</p>"; return; }
  const esc = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const parts = [];
  const conceptOf = (group, c) => pageLink(root, c.page, c.thumb, `${esc(group.layer)}/concepts:${c.j}`);
  const groupsLink = (groups) => "<ul>" + groups.map((g) =>
    `<li><a href="${root}${g.page}">${esc(g.layer)}</a> (${g.concepts.length} concepts)</li>`).join("") + "</ul>";
  const atlasLink = (list) => "<ul>" + list.map((a) =>
    `<li><a href="${root}${a.page}">${esc(a.name)}</a>${a.target ? ` (class ${esc(a.target)})` : ""}</li>`).join("") + "</ul>";
  const concept = q.match(/^(.+)\/concepts:(\d+)$/);
  const unit = concept ? null : q.match(/^(.+):(\d+)$/);
  if (concept) {
    const group = concepts.find((g) => g.layer === concept[1]);
    const found = group && group.concepts.find((c) => c.j === Number(concept[2]));
    parts.push(found ? `<h2>Concept</h2><div class="thumbs">${conceptOf(group, found)}</div>`
      : `<p>No concept ${esc(q)} in this Microscope.</p>`);
  }
  if (unit) {
    const layer = index.layers.find((l) => l.name === unit[1]);
    const channel = Number(unit[2]);
    if (!layer) parts.push(`<p>No layer ${esc(unit[1])} in this Microscope.</p>`);
    else if (channel >= layer.channels) parts.push(`<p>${esc(layer.name)} has ${layer.channels} channels.</p>`);
    else if (index.units[q]) parts.push(`<h2>Unit</h2><div class="thumbs">${unitLink(root, layer.name, channel, index.units[q])}</div>`);
    else if (served) parts.push(`<h2>Unit</h2><p>${esc(q)} is not built yet: <a href="${root}units/${layer.name}/${channel}.html">open it to render it now</a>.</p>`);
    else parts.push(`<p>${esc(q)} is not built; <code>featviz microscope serve</code> renders it when its page is opened.</p>`);
  }
  const needle = q.toLowerCase();
  if (!unit && !concept) {
    const layers = index.layers.filter((l) => l.name.toLowerCase().includes(needle));
    if (layers.length) {
      parts.push("<h2>Layers</h2><ul>" + layers.map((l) =>
        `<li><a href="${root}layers/${l.name}.html">${esc(l.name)}</a> (${l.built} of ${l.channels} units built)</li>`).join("") + "</ul>");
    }
    const word = (w) => needle === w || needle === `${w}s`;
    const groups = concepts.filter((g) => word("concept") || g.layer.toLowerCase().includes(needle));
    if (groups.length) parts.push(`<h2>Concepts</h2>${groupsLink(groups)}`);
    const maps = atlases.filter((a) => word("atlas") || needle === "atlases" || a.name.toLowerCase().includes(needle));
    if (maps.length) parts.push(`<h2>Activation atlases</h2>${atlasLink(maps)}`);
    const names = new Set(Object.keys(index.classes));
    concepts.forEach((g) => g.concepts.forEach((c) => c.drives.forEach((n) => names.add(n))));
    atlases.forEach((a) => a.target && names.add(a.target));
    const score = (n) => (n === needle ? 0 : n.split(/[ ,'-]+/).includes(needle) ? 1 : n.startsWith(needle) ? 2 : 3);
    const hits = [...names].filter((n) => n.includes(needle)).sort((a, b) => score(a) - score(b)).slice(0, 5);
    for (const name of hits) {
      const units = (index.classes[name] || []).map(([layer, channel, v]) =>
        unitLink(root, layer, channel, index.units[`${layer}:${channel}`]).replace("</figcaption>", ` (${v > 0 ? "+" : ""}${v})</figcaption>`));
      if (units.length) parts.push(`<h2>Units that drive "${esc(name)}" most</h2><div class="thumbs">${units.join("")}</div>`);
      const drivers = concepts.flatMap((g) => g.concepts.filter((c) => c.drives.includes(name)).map((c) => conceptOf(g, c)));
      if (drivers.length) parts.push(`<h2>Concepts that drive "${esc(name)}"</h2><div class="thumbs">${drivers.join("")}</div>`);
      const own = atlases.filter((a) => a.target === name);
      if (own.length) parts.push(`<h2>The class atlas of "${esc(name)}"</h2>${atlasLink(own)}`);
    }
  }
  box.innerHTML = parts.length ? parts.join("") : `<p>Nothing matches "${esc(q)}".</p>`;
}

document.addEventListener("DOMContentLoaded", () => {
  startUnits();
  linkUnbuilt();
  const sorter = document.getElementById("sort");
  if (sorter) sorter.addEventListener("change", () => sortUnits(sorter.value));
  search(document.body.dataset.root || "");
});
