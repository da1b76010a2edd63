// Follows a running backup or restore: polls its state once a second and
// reloads the page when it ends, so that the result and the undo button
// come from the server.
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root || root.dataset.state !== "running") return;
  var id = root.dataset.job;
  function update(j) {
    document.getElementById("job-state").textContent = j.state;
    (j.steps || []).forEach(function (s) {
      var li = document.querySelector('li.step[data-step="' + s.step + '"]');
      if (!li) return;
      li.className = "step " + s.state;
      li.querySelector(".sstate").textContent = s.state;
    });
    var bar = document.getElementById("upload");
    if (bar && j.total > 0) {
      bar.hidden = false;
      bar.value = Math.floor((j.sent * 100) / j.total);
    }
    document.getElementById("lines").textContent = j.lines.join("\n") + (j.lines.length ? "\n" : "");
    if (j.state !== "running") {
      window.location.reload();
      return true;
    }
    return false;
  }
  function poll() {
    fetch("/api/jobs/" + encodeURIComponent(id), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401 || r.status === 404) {
          // The daemon restarted (a restore of the leader reboots it): the
          // page says what is known now.
          window.location.reload();
          return new Promise(function () {});
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (j) {
        if (!update(j)) setTimeout(poll, 1000);
      })
      .catch(function () {
        setTimeout(poll, 3000);
      });
  }
  setTimeout(poll, 500);
})();
