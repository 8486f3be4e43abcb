// The web console's small script: live updates (server-sent events), the map, the
// charts, copy buttons. Pages work without it; it only adds what needs a script.
"use strict";
(function () {
  var PREFIX = "/ui";

  function text(el, value) { el.textContent = value; }

  function ageText(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "never";
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function refreshAges() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-field=age]").forEach(function (el) {
      var updated = parseFloat(el.getAttribute("data-updated"));
      text(el, isNaN(updated) ? "never" : ageText(Math.max(0, Math.floor(now - updated))));
    });
  }

  // --- live updates --------------------------------------------------------------------
  var vehicleMarkers = {};

  function applyUpdate(v) {
    document.querySelectorAll("[data-vehicle]").forEach(function (scope) {
      if (scope.getAttribute("data-vehicle") !== v.id) return;
      scope.querySelectorAll("[data-field]").forEach(function (el) {
        var name = el.getAttribute("data-field");
        if (!(name in v)) return;
        var value = v[name];
        var shown;
        if (name === "age") {
          el.setAttribute("data-updated", v.updated === null ? "" : String(v.updated));
          return;
        }
        if (el.hasAttribute("data-on")) {
          shown = value ? el.getAttribute("data-on") : el.getAttribute("data-off");
        } else if (name === "online") {
          shown = value ? "online" : "offline";
        } else if (value === null || value === "" || value === undefined) {
          shown = "\u2014";
        } else {
          shown = String(value) + (el.getAttribute("data-unit") || "");
        }
        if (el.textContent !== shown) {
          text(el, shown);
          el.classList.remove("changed");
          void el.offsetWidth;
          el.classList.add("changed");
        }
      });
    });
    var marker = vehicleMarkers[v.id];
    if (marker && v.lat !== null && v.lon !== null) marker.setLatLng([v.lat, v.lon]);
    refreshAges();
  }

  function startLive() {
    var ids = [];
    document.querySelectorAll("[data-live-vehicles]").forEach(function (el) {
      el.getAttribute("data-live-vehicles").split(",").forEach(function (id) {
        if (id && ids.indexOf(id) < 0) ids.push(id);
      });
    });
    if (!ids.length || !window.EventSource) return;
    var state = document.getElementById("live-state");
    var url = PREFIX + "/events?" + ids.map(function (id) {
      return "v=" + encodeURIComponent(id);
    }).join("&");
    if (document.querySelector("[data-live-app]")) url += "&app=1";
    var source = new EventSource(url);
    source.addEventListener("open", function () { if (state) text(state, "Live updates on."); });
    source.addEventListener("error", function () {
      if (state) text(state, "Live updates interrupted, reconnecting\u2026");
    });
    source.addEventListener("vehicle", function (e) { applyUpdate(JSON.parse(e.data)); });
    source.addEventListener("logout", function () {
      source.close();
      window.location.href = PREFIX + "/";
    });
  }

  // --- maps ----------------------------------------------------------------------------
  function makeMap(el) {
    if (!window.L || !el) return null;
    var lat = parseFloat(el.getAttribute("data-lat"));
    var lon = parseFloat(el.getAttribute("data-lon"));
    var known = !isNaN(lat) && !isNaN(lon);
    var map = L.map(el, { attributionControl: true });
    var tiles = el.getAttribute("data-tiles");
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 19, attribution: "Map tiles" }).addTo(map);
    } else {
      el.classList.add("plain");
    }
    map.setView(known ? [lat, lon] : [0, 0], known ? 13 : 1);
    return { map: map, known: known, lat: lat, lon: lon };
  }

  function seriesUrl(base, query) { return base + "?" + query; }

  function track(data) {
    var points = [];
    for (var i = 0; i < data.t.length; i++) {
      if (data.lat[i] !== null && data.lon[i] !== null) points.push([data.lat[i], data.lon[i]]);
    }
    return points;
  }

  function vehicleMap() {
    var el = document.getElementById("map");
    var made = makeMap(el);
    if (!made) return null;
    var scope = el.closest("[data-vehicle]");
    if (made.known) {
      var marker = L.circleMarker([made.lat, made.lon],
                                  { radius: 8, weight: 3, color: "#0b3d91", fillOpacity: 0.6,
                                    className: "car" });
      marker.addTo(made.map).bindTooltip("Last position");
      if (scope) vehicleMarkers[scope.getAttribute("data-vehicle")] = marker;
    }
    var midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    var since = Math.floor(midnight.getTime() / 1000);
    var layer = null;
    function draw(points, fit) {
      if (layer) made.map.removeLayer(layer);
      layer = null;
      if (points.length > 1) {
        layer = L.polyline(points, { color: "#c2185b", weight: 4, dashArray: "8 4",
                                     className: "track" });
        layer.addTo(made.map);
        if (fit) {
          var bounds = layer.getBounds();
          if (made.known) bounds.extend([made.lat, made.lon]);
          made.map.fitBounds(bounds, { padding: [20, 20] });
        }
      }
    }
    fetch(seriesUrl(el.getAttribute("data-series"), "days=1&since=" + since),
          { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) { draw(track(data), true); })
      .catch(function () {});
    document.querySelectorAll("button.trip").forEach(function (button) {
      button.addEventListener("click", function () {
        var from = Math.floor(Date.parse(button.getAttribute("data-since")) / 1000);
        var to = Math.ceil(Date.parse(button.getAttribute("data-until")) / 1000);
        if (isNaN(from) || isNaN(to)) return;
        fetch(seriesUrl(el.getAttribute("data-series"),
                        "days=30&since=" + from + "&until=" + to), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            draw(track(data), true);
            el.scrollIntoView({ block: "center" });
          }).catch(function () {});
      });
    });
    return made;
  }

  function zoneMap() {
    var el = document.getElementById("zone-map");
    var made = makeMap(el);
    if (!made) return;
    var latIn = document.getElementById("zone_lat");
    var lonIn = document.getElementById("zone_lon");
    var radiusIn = document.getElementById("zone_radius");
    if (made.known) {
      L.circleMarker([made.lat, made.lon], { radius: 6, weight: 2, color: "#0b3d91",
                                             className: "car" }).addTo(made.map)
        .bindTooltip("The car");
    }
    var circle = null;
    function show() {
      var lat = parseFloat(latIn.value), lon = parseFloat(lonIn.value);
      var radius = parseFloat(radiusIn.value) || 1;
      if (circle) made.map.removeLayer(circle);
      circle = null;
      if (isNaN(lat) || isNaN(lon)) return;
      circle = L.circle([lat, lon], { radius: radius * 1000, color: "#0b3d91" }).addTo(made.map);
    }
    made.map.on("click", function (e) {
      latIn.value = e.latlng.lat.toFixed(5);
      lonIn.value = e.latlng.lng.toFixed(5);
      if (!radiusIn.value) radiusIn.value = "1";
      show();
    });
    [latIn, lonIn, radiusIn].forEach(function (input) { input.addEventListener("change", show); });
    show();
  }

  // --- charts --------------------------------------------------------------------------
  function charts() {
    var mapEl = document.getElementById("map");
    var socEl = document.getElementById("chart-soc");
    var rangeEl = document.getElementById("chart-range");
    if (!mapEl || !socEl || !window.uPlot) return;
    var select = document.getElementById("days");
    var summary = document.getElementById("chart-summary");
    var plots = [];
    function width() { return Math.max(260, socEl.clientWidth || 300); }
    function plot(el, title, label, xs, ys, color) {
      var opts = {
        title: title, width: width(), height: 180,
        series: [{}, { label: label, stroke: color, width: 2, spanGaps: false }],
        axes: [{}, { size: 50 }],
        scales: { x: { time: true } }
      };
      return new uPlot(opts, [xs, ys], el);
    }
    function load() {
      fetch(seriesUrl(mapEl.getAttribute("data-series"), "days=" + select.value),
            { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          plots.forEach(function (p) { p.destroy(); });
          plots = [];
          if (!data.t.length) {
            text(summary, "No recorded values in this period.");
            return;
          }
          text(summary, data.t.length + " samples from " +
               new Date(data.t[0] * 1000).toLocaleString() + " to " +
               new Date(data.t[data.t.length - 1] * 1000).toLocaleString() + ".");
          plots.push(plot(socEl, "State of charge (%)", "SOC %", data.t, data.soc, "#0b3d91"));
          plots.push(plot(rangeEl, "Range (km)", "range km", data.t, data.range, "#2e7d32"));
        }).catch(function () { text(summary, "Could not load the history."); });
    }
    select.addEventListener("change", load);
    window.addEventListener("resize", function () {
      plots.forEach(function (p) { p.setSize({ width: width(), height: 180 }); });
    });
    load();
  }

  // --- forms and buttons -----------------------------------------------------------------
  function copyButtons() {
    document.querySelectorAll("button.copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.getElementById(button.getAttribute("data-copy"));
        var done = button.parentNode.querySelector(".copied");
        function ok() { if (done) text(done, "Copied."); }
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(input.value).then(ok, function () {
            input.select();
            if (done) text(done, "Selected: press Ctrl+C to copy.");
          });
        } else {
          input.select();
          if (document.execCommand("copy")) ok();
        }
      });
    });
  }

  function controlForms() {
    document.querySelectorAll("form.control").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        var button = e.submitter;
        if (!button) return;
        // The clicked button's name/value must still be sent: copy it before disabling.
        var hidden = document.createElement("input");
        hidden.type = "hidden";
        hidden.name = button.name;
        hidden.value = button.value;
        form.appendChild(hidden);
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        button.setAttribute("aria-busy", "true");
        text(button, "Waiting for the car\u2026");
      });
    });
  }

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmations();
    refreshAges();
    setInterval(refreshAges, 10000);
    startLive();
    vehicleMap();
    zoneMap();
    charts();
    copyButtons();
    controlForms();
  });
})();
