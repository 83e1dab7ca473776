// Berth dashboard: live logs over EventSource, copy buttons, confirmations. Pages work without it.
"use strict";
function follow(pre) {
  var url = pre.dataset.stream, after = pre.dataset.after || "0";
  var status = document.getElementById(pre.dataset.status || "");
  var es = new EventSource(url + (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(after));
  var stick = true;
  pre.addEventListener("scroll", function () { stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8; });
  es.onmessage = function (ev) {
    var f; try { f = JSON.parse(ev.data); } catch (e) { return; }
    if (f.type === "log") {
      var line = f.line;
      if (pre.dataset.kind === "runtime") { line = f.timestamp + " " + f.stream + " " + f.line; }
      if (pre.dataset.empty) { pre.textContent = ""; delete pre.dataset.empty; }
      pre.appendChild(document.createTextNode(line + "\n"));
      if (stick) { pre.scrollTop = pre.scrollHeight; }
    } else if (f.type === "status" && status) {
      status.textContent = f.status; status.className = "badge s-" + f.status;
    } else if (f.type === "done") {
      es.close();
      if (status) { status.textContent = f.status; status.className = "badge s-" + f.status; }
      var done = document.getElementById("log-done");
      if (done) { done.hidden = false; }
      // The outcome changes the page (timeline, actions): show it as the server renders it now.
      if (pre.dataset.reload) { window.setTimeout(function () { window.location.reload(); }, 400); }
    }
  };
}
document.querySelectorAll("pre[data-stream]").forEach(follow);
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("[data-copy]");
  if (!b) { return; }
  var t = document.getElementById(b.dataset.copy);
  if (t && navigator.clipboard) {
    navigator.clipboard.writeText(t.value || t.textContent).then(function () { b.textContent = "Copied"; });
  }
});
document.addEventListener("submit", function (ev) {
  var q = ev.target.dataset.confirm;
  if (q && !window.confirm(q)) { ev.preventDefault(); }
});
