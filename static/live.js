// Parley live layer: the event stream, fragment swaps, and small niceties.
// Every page works without this file; it only adds what a plain page cannot do.
// No framework, no inline script (the CSP forbids it).
(function () {
  "use strict";

  var body = document.body;
  var me = body.getAttribute("data-me") || "0";
  var pageAfter = Number(body.getAttribute("data-after") || "0");
  var lastSeen = pageAfter;
  var FETCH_HEADER = { "X-Parley-Fetch": "1" };

  // ---- helpers ------------------------------------------------------------------------------

  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function byId(id) {
    return id ? document.getElementById(id) : null;
  }

  function openConversationId() {
    var view = document.querySelector(".conversation[data-conversation]");
    return view ? view.getAttribute("data-conversation") : null;
  }

  function setCount(el, n) {
    if (!el) return;
    n = Math.max(0, n);
    el.textContent = String(n);
    el.setAttribute("data-count", String(n));
    if (el.classList.contains("unread")) el.setAttribute("aria-label", n + " unread");
  }

  function count(el) {
    return el ? Number(el.getAttribute("data-count") || el.textContent || "0") || 0 : 0;
  }

  function updateTitle() {
    var badge = byId("badge-unread");
    var rows = document.querySelectorAll("#conversation-list .unread");
    var total = 0;
    if (rows.length) {
      rows.forEach(function (u) { total += count(u); });
      setCount(badge, total);
    } else {
      total = count(badge);
    }
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = total > 0 ? "(" + total + ") " + base : base;
  }

  // ---- per-viewer touches on shared fragments ---------------------------------------------------

  function decorate(root) {
    if (!root || !root.querySelectorAll) return;
    var scope = [root].concat(Array.prototype.slice.call(root.querySelectorAll("*")));
    scope.forEach(function (el) {
      if (el.matches("article.message") && el.getAttribute("data-author") === me) {
        el.classList.add("mine");
      }
      if (el.matches("[data-reader]")) {
        var msg = el.closest("article.message");
        var reader = el.getAttribute("data-reader");
        // My own marker and an author's marker on their own message say nothing to me.
        el.hidden = reader === me || (msg && msg.getAttribute("data-author") === reader);
      }
      if (el.matches("[data-owner-only]")) {
        var owner = el.closest("[data-owner]");
        el.hidden = !owner || owner.getAttribute("data-owner") !== me;
      }
      if (el.matches("time[datetime]")) localTime(el);
    });
  }

  function groupMessage(msg) {
    var prev = msg.previousElementSibling;
    while (prev && !prev.matches("article.message")) prev = prev.previousElementSibling;
    if (!prev) return;
    var sameDay = prev.getAttribute("data-day") === msg.getAttribute("data-day");
    if (!sameDay && !(msg.previousElementSibling && msg.previousElementSibling.matches(".day"))) {
      var sep = document.createElement("div");
      sep.className = "day";
      sep.setAttribute("role", "separator");
      var span = document.createElement("span");
      span.textContent = new Date(msg.getAttribute("data-at")).toLocaleDateString(undefined, {
        weekday: "long", year: "numeric", month: "long", day: "numeric"
      });
      sep.appendChild(span);
      msg.parentNode.insertBefore(sep, msg);
      return;
    }
    var gap = Date.parse(msg.getAttribute("data-at")) - Date.parse(prev.getAttribute("data-at"));
    if (sameDay && prev.getAttribute("data-author") === msg.getAttribute("data-author") && gap < 5 * 60 * 1000) {
      msg.classList.add("continued");
    }
  }

  // ---- times ------------------------------------------------------------------------------------

  function localTime(el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) return;
    el.title = d.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
    var mins = Math.floor((Date.now() - d.getTime()) / 60000);
    var text;
    if (mins < 1) text = "just now";
    else if (mins < 60) text = mins + " min ago";
    else if (d.toDateString() === new Date().toDateString()) text = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    else text = d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    el.textContent = text;
  }

  function refreshTimes() {
    document.querySelectorAll("time[datetime]").forEach(localTime);
  }

  // ---- scrolling --------------------------------------------------------------------------------

  function scroller() {
    return document.querySelector(".messages-wrap");
  }

  function nearBottom(s) {
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function toBottom() {
    var s = scroller();
    if (s) s.scrollTop = s.scrollHeight;
    var b = document.querySelector(".new-messages");
    if (b) b.hidden = true;
  }

  // ---- read markers -----------------------------------------------------------------------------

  var lastReadPosted = 0;
  var readTimer = null;

  function newestMessageId(cid) {
    var list = byId("messages-" + cid);
    var last = list && list.querySelector("article.message:last-of-type");
    if (!last) return 0;
    return Number(last.id.replace("message-", "")) || 0;
  }

  function markRead() {
    var cid = openConversationId();
    if (!cid || document.visibilityState !== "visible") return;
    var s = scroller();
    if (s && !nearBottom(s)) return;
    var id = newestMessageId(cid);
    if (!id || id <= lastReadPosted) return;
    clearTimeout(readTimer);
    readTimer = setTimeout(function () {
      lastReadPosted = id;
      fetch("/conversations/" + cid + "/read", {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/x-www-form-urlencoded" }, FETCH_HEADER),
        body: "message_id=" + id,
        credentials: "same-origin"
      }).catch(function () { lastReadPosted = 0; });
      var row = byId("conversation-" + cid);
      if (row) setCount(row.querySelector(".unread"), 0);
      updateTitle();
    }, 300);
  }

  // ---- applying frames --------------------------------------------------------------------------

  // A new message: group it on the open page, move its conversation to the top of the list,
  // and count it as unread unless it is mine or I am reading that conversation right now.
  // `shown` is false on pages without that conversation's message list.
  function afterMessage(el, shown) {
    var cid = el.getAttribute("data-conversation");
    var author = el.getAttribute("data-author");
    if (shown) groupMessage(el);
    var open = shown && openConversationId() === cid;
    var s = scroller();
    if (open && s) {
      if (author === me || nearBottom(s)) toBottom();
      else {
        var b = document.querySelector(".new-messages");
        if (b) b.hidden = false;
      }
    }
    var row = byId("conversation-" + cid);
    if (row && row.parentNode) {
      row.parentNode.insertBefore(row, row.parentNode.firstElementChild);
      var reading = open && document.visibilityState === "visible" && s && nearBottom(s);
      if (author !== me && !reading) {
        var u = row.querySelector(".unread");
        setCount(u, count(u) + 1);
      }
    } else if (author !== me && !open) {
      var badge = byId("badge-unread");
      setCount(badge, count(badge) + 1);
    }
    if (open) markRead();
    updateTitle();
  }

  function insert(action, target, el) {
    var existing = byId(el.id);
    if (existing && existing.parentNode === target) {
      // Already here (a replay, or the reply to our own send): refresh in place.
      existing.replaceWith(el);
      return false;
    }
    if (existing) existing.remove(); // a moved record (a read marker, a list row)
    if (action === "prepend") target.insertBefore(el, target.firstChild);
    else target.appendChild(el);
    return true;
  }

  function apply(action, html) {
    if (action === "reload") {
      location.reload();
      return;
    }
    var el = parse(html);
    if (!el) return;
    var forUser = el.getAttribute("data-for");
    if (forUser && forUser !== me) return;
    var targetId = el.getAttribute("data-target");
    el.removeAttribute("data-target");
    el.removeAttribute("data-for");
    var badge = el.getAttribute("data-badge-requests");
    if (badge) {
      el.removeAttribute("data-badge-requests");
      var b = byId("badge-requests");
      setCount(b, count(b) + Number(badge));
    }
    if (action === "presence") {
      var uid = el.getAttribute("data-presence");
      document.querySelectorAll('[data-presence="' + uid + '"]').forEach(function (dot) {
        dot.className = el.className;
        dot.title = el.title;
        if (el.hasAttribute("aria-label")) dot.setAttribute("aria-label", el.getAttribute("aria-label"));
      });
      return;
    }
    var target = byId(targetId);
    if (!target) {
      if (el.matches("article.message") && (action === "append" || action === "prepend")) {
        afterMessage(el, false);
      }
      return;
    }
    if (action === "remove") {
      target.remove();
      updateTitle();
      return;
    }
    if (action === "replace") {
      target.replaceWith(el);
      decorate(el);
      return;
    }
    if (action === "append" || action === "prepend") {
      // Something added to the open message list (a message, a receipt) keeps a reader who was
      // at the bottom there.
      var s = scroller();
      var stick = s && s.contains(target) && nearBottom(s);
      var isNew = insert(action, target, el);
      if (stick && !el.matches("article.message")) toBottom();
      decorate(el);
      if (el.matches("article.message") && isNew) afterMessage(el, true);
      if (el.matches("[data-reader]") && el.getAttribute("data-reader") === me) {
        var cid = el.id.split("-")[1];
        var row = byId("conversation-" + cid);
        if (row) setCount(row.querySelector(".unread"), 0);
        updateTitle();
      }
      if (el.matches("li.conv-row")) updateTitle();
    }
  }

  // ---- the stream: one per browser --------------------------------------------------------------
  // Browsers allow six HTTP/1.1 connections per site, so one tab holds the stream (a Web Lock)
  // and shares its frames with the others (BroadcastChannel); when it closes, another takes over.

  var ACTIONS = ["append", "prepend", "replace", "remove", "presence", "reload"];
  var channel = null;

  function handle(frame) {
    if (frame.id) {
      if (frame.id <= pageAfter) return; // already in this page
      lastSeen = Math.max(lastSeen, frame.id);
    }
    apply(frame.action, frame.data);
  }

  function status(text) {
    var s = byId("live-status");
    if (s) s.textContent = text;
  }

  function openStream(onFrame) {
    return new Promise(function (release) {
      var source = new EventSource("/events?after=" + lastSeen);
      // Leaving the page closes the stream at once (presence goes offline on time) and hands
      // the stream over to another tab.
      window.addEventListener("pagehide", function () {
        source.close();
        release();
      });
      var ephemeral = { presence: true, reload: true };
      ACTIONS.forEach(function (action) {
        source.addEventListener(action, function (e) {
          var id = ephemeral[action] ? 0 : Number(e.lastEventId || "0");
          onFrame({ action: action, data: e.data, id: id });
        });
      });
      source.onopen = function () { status(""); };
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) {
          // Refused. Ask why: 429 (too many streams for this account) waits and tries again;
          // 401 (the session ended) and anything else reload, at once if the server is up.
          fetch("/events?probe=1", { cache: "no-store", credentials: "same-origin" }).then(function (r) {
            if (r.status === 429) {
              r.text().then(status);
              setTimeout(function () { openStream(onFrame).then(release); }, 60000);
            } else if (r.ok || r.status === 401) location.reload();
            else setTimeout(function () { location.reload(); }, 5000);
          }, function () { setTimeout(function () { location.reload(); }, 5000); });
        } else {
          status("Reconnecting…");
        }
      };
    });
  }

  function startStream() {
    if (me === "0") return;
    var name = "parley-stream-" + me;
    if (navigator.locks && window.BroadcastChannel) {
      channel = new BroadcastChannel(name);
      channel.onmessage = function (m) { handle(m.data); };
      navigator.locks.request(name, function () {
        return openStream(function (frame) {
          handle(frame);
          channel.postMessage(frame);
        });
      });
    } else {
      openStream(handle);
    }
  }

  // ---- the composer -----------------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + Math.random().toString(36).slice(2);
  }

  function sendMessage(form) {
    var text = form.querySelector("textarea");
    var err = form.querySelector(".field-error");
    var button = form.querySelector("button[type=submit]");
    if (!text || !text.value.trim()) return;
    var data = new URLSearchParams(new FormData(form));
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      headers: FETCH_HEADER,
      body: data,
      credentials: "same-origin"
    }).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, status: r.status, text: t }; });
    }).then(function (r) {
      button.disabled = false;
      if (r.ok) {
        var cid = form.getAttribute("data-composer");
        var list = byId("messages-" + cid);
        var el = parse(r.text);
        if (list && el) {
          var isNew = insert("append", list, el);
          decorate(el);
          if (isNew) afterMessage(el, true);
        }
        text.value = "";
        form.querySelector("input[name=client_id]").value = newClientId();
        if (err) err.textContent = "";
        text.removeAttribute("aria-invalid");
        toBottom();
      } else if (r.status === 401 || r.status === 303) {
        location.reload();
      } else {
        // 422: a broken rule; 429: sending too fast. The draft stays either way.
        if (err) err.textContent = r.status === 422 || r.status === 429 ? r.text : "Could not send: " + (r.text || r.status);
        text.setAttribute("aria-invalid", "true");
      }
      text.focus();
    }, function () {
      button.disabled = false;
      // Same client id on the retry: the server stores the message once.
      if (err) err.textContent = "Could not send: no connection. Press Enter to try again.";
      text.focus();
    });
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      e.preventDefault();
      return;
    }
    if (form.matches("form.composer")) {
      e.preventDefault();
      sendMessage(form);
    }
  });

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t.matches && t.matches("form.composer textarea") && e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendMessage(t.form);
    }
  });

  // A page restored from the back/forward cache is stale and has no stream: load it afresh.
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) location.reload();
  });

  // ---- start ------------------------------------------------------------------------------------

  decorate(document.body);
  document.querySelectorAll(".messages article.message").forEach(function (m) {
    if (m.getAttribute("data-author") === me) m.classList.add("mine");
  });
  var s = scroller();
  if (s) {
    var paged = /[?&]before=/.test(location.search);
    if (!paged) toBottom();
    s.addEventListener("scroll", function () {
      if (nearBottom(s)) {
        var b = document.querySelector(".new-messages");
        if (b) b.hidden = true;
        markRead();
      }
    });
  }
  // A composer growing with its text must not push the newest message out of sight.
  var box = document.querySelector("form.composer textarea");
  if (box && s) {
    var stuck = true;
    box.addEventListener("keydown", function () { stuck = nearBottom(s); });
    box.addEventListener("input", function () { if (stuck) toBottom(); });
  }
  var newer = document.querySelector(".new-messages");
  if (newer) newer.addEventListener("click", toBottom);
  document.addEventListener("visibilitychange", markRead);
  updateTitle();
  setInterval(refreshTimes, 30000);
  var composer = document.querySelector("form.composer textarea");
  if (composer && !/[?&]before=/.test(location.search)) composer.focus();
  startStream();
})();
