// reviewqueue: keyboard, SLA countdowns and help. No inline script (CSP), no dependencies.
(function () {
  "use strict";

  function typing(target) {
    // Keys typed into a field belong to the field, never to a shortcut.
    if (!target || !(target instanceof Element)) return false;
    return target.isContentEditable || !!target.closest("input, textarea, select, [contenteditable]");
  }

  // ------------------------------------------------------------- SLA ---
  // "14 min left", not "14:05 left", which reads like a time of day.
  function span(seconds) {
    seconds = Math.floor(Math.abs(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
        m = Math.floor(seconds % 3600 / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    if (m) return m + " min";
    return seconds + " s";
  }
  var URGENT_SECONDS = 300;  // the last five minutes turn the countdown urgent
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("datetime"));
      if (isNaN(due)) return;
      var left = (due - now) / 1000;
      el.textContent = left >= 0 ? span(left) + " left" : "overdue " + span(left);
      el.classList.toggle("sla-overdue", left < 0);
      el.classList.toggle("sla-soon", left >= 0 && left < URGENT_SECONDS);
    });
  }

  // ----------------------------------------------------------- queue ---
  var selectedId = null;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]")); }
  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    selectedId = row.getAttribute("data-id");
    try { sessionStorage.setItem("rq-selected", selectedId); } catch (e) { /* private mode */ }
    row.scrollIntoView({ block: "nearest" });
  }
  function restoreSelection() {
    var all = rows();
    if (!all.length) return;
    var keep = selectedId;
    if (!keep) { try { keep = sessionStorage.getItem("rq-selected"); } catch (e) { keep = null; } }
    var row = all.filter(function (r) { return r.getAttribute("data-id") === keep; })[0];
    select(row || all[0]);
  }
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.findIndex(function (r) { return r.classList.contains("selected"); });
    select(all[Math.max(0, Math.min(all.length - 1, index + step))]);
  }
  function openSelected(hash) {
    var row = document.querySelector("tr[data-row].selected");
    if (row) window.location.assign(row.getAttribute("data-href") + (hash || ""));
  }

  // ---------------------------------------------------------- action ---
  function page() { return document.querySelector("[data-action-page]"); }
  function focusField(id, openDetails) {
    var el = document.getElementById(id);
    if (!el) return false;
    if (openDetails) { var d = el.closest("details"); if (d) d.open = true; }
    el.focus();
    return true;
  }
  function submitForm(id) {
    var form = document.getElementById(id);
    if (!form) return false;
    if (form.dataset.sent) return true;  // one key press, one decision
    form.dataset.sent = "1";
    form.requestSubmit();
    return true;
  }

  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (typing(event.target)) return;
    var help = document.getElementById("help");
    if (event.key === "?") { event.preventDefault(); if (help.open) help.close(); else help.showModal(); return; }
    if (help && help.open) return;
    var action = page();
    var handled = true;
    if (action) {
      switch (event.key) {
        case "j": if (action.dataset.next) window.location.assign(action.dataset.next); else handled = false; break;
        case "k": if (action.dataset.prev) window.location.assign(action.dataset.prev); else handled = false; break;
        case "a": handled = submitForm("approve-form"); break;
        case "r": handled = focusField("reject-reason"); break;
        case "e": handled = focusField("edit-payload", true); break;
        case "c": handled = submitForm("confirm-form"); break;
        case "f": handled = focusField("flag-reason"); break;
        default: handled = false;
      }
    } else if (rows().length) {
      switch (event.key) {
        case "j": move(1); break;
        case "k": move(-1); break;
        case "Enter": case "o": openSelected(""); break;
        case "a": openSelected("#approve"); break;
        case "r": openSelected("#reject"); break;
        case "e": openSelected("#edit"); break;
        default: handled = false;
      }
    } else { handled = false; }
    if (handled) event.preventDefault();
  }

  function onLoad() {
    tick();
    setInterval(tick, 1000);
    restoreSelection();
    // Opened from the queue with a/r/e: put the focus where the key points.
    var hash = window.location.hash;
    if (page()) {
      if (hash === "#approve") { var b = document.getElementById("approve-button"); if (b) b.focus(); }
      if (hash === "#reject") focusField("reject-reason");
      if (hash === "#edit") focusField("edit-payload", true);
    }
    document.addEventListener("keydown", onKey);
    document.addEventListener("click", function (event) {
      var opener = event.target.closest("[data-help-open]");
      if (opener) { document.getElementById("help").showModal(); return; }
      var row = event.target.closest("tr[data-row]");
      if (row && !event.target.closest("a, button")) window.location.assign(row.getAttribute("data-href"));
    });
    document.body.addEventListener("htmx:afterSwap", function () { tick(); restoreSelection(); });
    // A poll after the session ended lands on the login form: go there instead of swapping it in.
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var url = event.detail.xhr && event.detail.xhr.responseURL;
      if (url && url.indexOf("/accounts/login/") !== -1) {
        event.detail.shouldSwap = false;
        window.location.assign(url);
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onLoad);
  else onLoad();
})();
