// The activation atlas's zoom: the map's width is ZOOM times the view's; the buttons, the
// wheel (about the pointer) and the keys + - 0 change it, scrolling pans.
(function () {
  "use strict";
  function start() {
    var view = document.getElementById("atlas-view"), map = document.getElementById("atlas-map");
    var label = document.getElementById("atlas-zoom");
    if (!view || !map) return;
    var zoom = 1, most = 16;
    function set(z, x, y) {
      z = Math.min(most, Math.max(1, z));
      var rect = view.getBoundingClientRect();
      var px = x === undefined ? rect.width / 2 : x - rect.left, py = y === undefined ? rect.height / 2 : y - rect.top;
      var fx = (view.scrollLeft + px) / map.offsetWidth, fy = (view.scrollTop + py) / map.offsetHeight;
      zoom = z;
      map.style.width = (100 * zoom) + "%";
      view.scrollLeft = fx * map.offsetWidth - px;
      view.scrollTop = fy * map.offsetHeight - py;
      if (label) label.textContent = Math.round(100 * zoom) + "%";
      map.setAttribute("data-zoom", String(zoom));
    }
    document.querySelectorAll("[data-zoom]").forEach(function (b) {
      if (b === map) return;
      b.addEventListener("click", function () {
        var what = b.getAttribute("data-zoom");
        set(what === "in" ? zoom * 1.5 : what === "out" ? zoom / 1.5 : 1);
      });
    });
    view.addEventListener("wheel", function (e) {
      e.preventDefault();
      set(zoom * (e.deltaY < 0 ? 1.25 : 0.8), e.clientX, e.clientY);
    }, { passive: false });
    document.addEventListener("keydown", function (e) {
      if (e.target && /INPUT|TEXTAREA/.test(e.target.tagName)) return;
      if (e.key === "+" || e.key === "=") set(zoom * 1.5);
      else if (e.key === "-") set(zoom / 1.5);
      else if (e.key === "0") set(1);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
