// Show every time also in the browser's own zone, beside the UTC the server wrote; keep
// empty filters out of the list's URL.
// textContent only: nothing from the page is ever parsed as markup.
(function () {
  "use strict";
  var format = null;
  try {
    format = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
      timeZoneName: "short"
    });
  } catch (e) {
    format = null;
  }
  function localise() {
    if (format === null) {
      return;
    }
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
  // A filter left empty stays out of the URL, so a bookmarked listing reads as what it
  // shows. (Without this script the server ignores empty fields all the same.)
  function tidyFilters() {
    var form = document.querySelector("form.filters");
    if (!form) {
      return;
    }
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.name && field.value === "") {
          field.disabled = true;
        }
      });
    });
    // Coming back through the history must not find the fields still disabled.
    window.addEventListener("pageshow", function () {
      Array.prototype.forEach.call(form.elements, function (field) {
        field.disabled = false;
      });
    });
  }
  function start() {
    localise();
    tidyFilters();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
