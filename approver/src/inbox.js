// Expiry countdowns: every element with data-expires (Unix seconds).
(function () {
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = Math.round(Number(el.getAttribute("data-expires")) - now);
      if (left <= 0) { el.textContent = "expired"; return; }
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = "expires in " + (m > 0 ? m + "m " : "") + s + "s";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
