/* SAMALink portal behaviour: menu, copy buttons, tabs, toasts, time zone detection.
   No inline scripts anywhere, so the Content-Security-Policy can forbid them. */
(function () {
  "use strict";

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  /* Sidebar behind a menu button on small screens. */
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-menu-toggle]");
    if (toggle) {
      var open = document.body.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    if (document.body.classList.contains("nav-open") && event.target.closest(".sidebar a")) {
      document.body.classList.remove("nav-open");
    }
  });

  /* Copy buttons: copy the target's text and confirm with "Copied" for a moment. */
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-copy-target"));
    if (!target) return;
    var text = target.textContent;
    var done = function () {
      button.textContent = "Copied";
      button.classList.add("copied");
      window.setTimeout(function () {
        button.textContent = "Copy";
        button.classList.remove("copied");
      }, 1600);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  });

  /* Tabs: without JavaScript every panel shows; with it, one at a time. */
  function initTabs(root) {
    root.querySelectorAll("[data-tabs]").forEach(function (tabs) {
      tabs.classList.add("tabs-ready");
    });
  }

  document.addEventListener("click", function (event) {
    var tab = event.target.closest("[data-tabs] [role=tab]");
    if (!tab) return;
    var tabs = tab.closest("[data-tabs]");
    tabs.querySelectorAll("[role=tab]").forEach(function (t) {
      var active = t === tab;
      t.classList.toggle("active", active);
      t.setAttribute("aria-selected", active ? "true" : "false");
    });
    tabs.querySelectorAll("[role=tabpanel]").forEach(function (panel) {
      panel.classList.toggle("active", panel.id === tab.getAttribute("aria-controls"));
    });
  });

  document.addEventListener("keydown", function (event) {
    var tab = event.target.closest && event.target.closest("[data-tabs] [role=tab]");
    if (!tab || (event.key !== "ArrowRight" && event.key !== "ArrowLeft")) return;
    var list = Array.prototype.slice.call(tab.parentNode.querySelectorAll("[role=tab]"));
    var next = list[(list.indexOf(tab) + (event.key === "ArrowRight" ? 1 : list.length - 1)) % list.length];
    next.focus();
    next.click();
  });

  /* Toasts fade away on their own. */
  function initToasts(root) {
    root.querySelectorAll("[data-autohide]").forEach(function (toast) {
      window.setTimeout(function () { toast.classList.add("toast-hide"); }, 5000);
    });
  }

  /* Plain (non-htmx) forms: disable the submit button while the page loads. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("hx-post") || form.hasAttribute("hx-get")) return;
    var button = form.querySelector("button[type=submit]");
    if (button) {
      window.setTimeout(function () { button.disabled = true; button.classList.add("busy"); }, 0);
    }
  });

  /* First visit: take the browser's time zone for dates and daily totals. */
  function detectTimezone() {
    var url = document.body.getAttribute("data-tz-detect");
    if (!url || !window.Intl) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone) return;
    var body = new URLSearchParams();
    body.set("timezone", zone);
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (response) {
      document.body.removeAttribute("data-tz-detect");
      if (response.ok && zone !== "UTC" && document.querySelector("[data-tz-sensitive]")) {
        window.location.reload();
      }
    });
  }

  /* An htmx request that failed (server error, expired form, network) says so in a toast. */
  function showToast(message, kind) {
    var box = document.querySelector(".toasts");
    if (!box) {
      box = document.createElement("div");
      box.className = "toasts";
      box.setAttribute("role", "status");
      (document.getElementById("main") || document.body).appendChild(box);
    }
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (kind || "error");
    toast.textContent = message;
    box.appendChild(toast);
    window.setTimeout(function () { toast.classList.add("toast-hide"); }, 6000);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 400) {
      showToast("This form expired. Reload the page and try again.");
    } else if (status === 503) {
      showToast("The usage service is unavailable right now. Try again in a minute.");
    } else {
      showToast("Something went wrong (" + status + "). Please try again.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    showToast("Cannot reach SAMALink. Check your connection and try again.");
  });

  function init(root) {
    initTabs(root);
    initToasts(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    detectTimezone();
  });
  document.addEventListener("htmx:load", function (event) { init(event.detail.elt); });
})();
