// Show every time also in the browser's own zone, beside the UTC the server wrote.
// textContent only: nothing from the page is ever parsed as markup.
(function () {
  "use strict";
  var format;
  try {
    format = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
      timeZoneName: "short"
    });
  } catch (e) {
    return;
  }
  function localise() {
    var times = document.querySelectorAll("time[datetime]");
    Array.prototype.forEach.call(times, function (el) {
      // Milliseconds are as fine as Date goes; the UTC text keeps the microseconds.
      var iso = el.getAttribute("datetime").replace(/(\.\d{3})\d+/, "$1");
      var when = new Date(iso);
      if (isNaN(when.getTime())) {
        return;
      }
      var local = document.createElement("span");
      local.className = "local";
      local.textContent = format.format(when) + " (your zone)";
      el.parentNode.insertBefore(local, el.nextSibling);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", localise);
  } else {
    localise();
  }
})();
