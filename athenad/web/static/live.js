// Live parts of Athena's pages: server-sent events say when data changed, then the
// page's live block is fetched again (?fragment=1); a job page appends its log lines.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource || !window.fetch) return;
  var busy = false, again = false;
  function refresh() {
    // A ticked job (a bulk action being chosen) keeps the table still until it is sent.
    if (live.querySelector("input[type=checkbox]:checked")) return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(live.dataset.live, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) live.innerHTML = html; })
      .finally(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var log = document.getElementById("log");
  var source, first = true;
  if (log && log.dataset.stream) {
    source = new EventSource(log.dataset.stream);
    source.addEventListener("log", function (e) {
      var line = JSON.parse(e.data);
      var text = line.at + " " + (line.level + "       ").slice(0, 7) + " " + line.message;
      if (line.fields) text += "  " + JSON.stringify(line.fields);
      log.appendChild(document.createTextNode(text + "\n"));
      log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("status", function () { if (!first) refresh(); first = false; });
    source.addEventListener("end", function () { source.close(); refresh(); });
  } else {
    source = new EventSource("/api/events");
    source.addEventListener("state", function () { if (!first) refresh(); first = false; });
    source.addEventListener("job", refresh);
  }
})();
