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

  // ---- a session that ended under the page ----------------------------------------------------

  // The server answers a logged-out `fetch` with 401 (a GET follows the redirect to the login
  // page). Then the page reloads, which leads to the login form and back here after it; the
  // composer's draft waits in sessionStorage meanwhile.
  var DRAFT_KEY = "parley-draft:" + location.pathname;

  function loggedOut(r) {
    var toLogin = r.redirected && new URL(r.url, location.href).pathname === "/login";
    if (r.status !== 401 && !toLogin) return false;
    var draft = document.querySelector("form.composer textarea");
    if (draft && draft.value.trim()) {
      try { sessionStorage.setItem(DRAFT_KEY, draft.value); } catch (e) { /* storage full or off */ }
    }
    location.reload();
    return true;
  }

  (function restoreDraft() {
    var draft = document.querySelector("form.composer textarea");
    var saved = null;
    try { saved = sessionStorage.getItem(DRAFT_KEY); } catch (e) { return; }
    if (!draft || saved === null) return;
    sessionStorage.removeItem(DRAFT_KEY);
    if (!draft.value) draft.value = saved;
  })();

  // A fetch whose answer is not for this page (logged out) never settles: its caller stops there.
  function answered(r) {
    return loggedOut(r) ? new Promise(function () {}) : r;
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
    if (el.classList.contains("unread")) {
      var mentioned = Number(el.getAttribute("data-mentions") || "0") > 0;
      el.setAttribute("aria-label", n + " unread" + (mentioned ? ", you are mentioned" : ""));
    }
  }

  function hasId(list, id) {
    return (list || "").split(" ").indexOf(id) >= 0;
  }

  function count(el) {
    return el ? Number(el.getAttribute("data-count") || el.textContent || "0") || 0 : 0;
  }

  function updateTitle() {
    var badge = byId("badge-unread");
    // Muted conversations keep their own count but stay out of the header's (as the server's).
    var rows = document.querySelectorAll("#conversation-list .conv-row:not(.muted) .unread");
    var listed = !!document.querySelector("#conversation-list");
    var total = 0;
    if (listed) {
      rows.forEach(function (u) { total += count(u); });
      setCount(badge, total);
    } else {
      total = count(badge);
    }
    var base = document.title.replace(/^\(\d+\) /, "");
    document.title = total > 0 ? "(" + total + ") " + base : base;
    var icon = document.querySelector("link[rel=icon]");
    var href = total > 0 ? "/icon/" + Math.min(total, 100) : "/static/favicon.svg";
    if (icon && icon.getAttribute("href") !== href) icon.setAttribute("href", href);
  }

  // ---- notification settings (mine: muted and mentions-only conversations) ---------------------

  function prefs(kind) {
    var p = byId("notify-prefs");
    return p ? (p.getAttribute("data-" + kind) || "").split(" ").filter(Boolean) : [];
  }

  function isMuted(cid) {
    return prefs("muted").indexOf(cid) >= 0;
  }

  // The "Notify me of" menu of an open conversation follows my settings changed elsewhere (another
  // tab), as a fresh load shows them; not while I am choosing in it.
  function syncNotifyForms() {
    document.querySelectorAll("form.notify-form select[name=level]").forEach(function (sel) {
      if (document.activeElement === sel) return;
      var cid = (sel.id || "").replace("notify-", "");
      var level = isMuted(cid) ? "mute" : prefs("mentions").indexOf(cid) >= 0 ? "mentions" : "all";
      Array.prototype.forEach.call(sel.options, function (o) { o.defaultSelected = o.value === level; });
      sel.value = level;
    });
  }

  function forgetPrefs(cid) {
    var p = byId("notify-prefs");
    if (!p) return;
    ["muted", "mentions"].forEach(function (kind) {
      var ids = prefs(kind);
      if (ids.indexOf(cid) >= 0) {
        p.setAttribute("data-" + kind, ids.filter(function (i) { return i !== cid; }).join(" "));
      }
    });
  }

  // ---- per-viewer touches on shared fragments ---------------------------------------------------
  // Frames are the same for everyone; what differs per viewer is decided here, from data-*
  // attributes and <body data-me>, for server-rendered pages and live frames alike.

  function decorate(root) {
    if (!root || !root.querySelectorAll) return;
    var scope = [root].concat(Array.prototype.slice.call(root.querySelectorAll("*")));
    var open = openConversationId();
    scope.forEach(function (el) {
      if (el.matches("article.message")) {
        el.classList.toggle("mine", el.getAttribute("data-author") === me);
        el.classList.toggle("mentions-me", hasId(el.getAttribute("data-mentions"), me));
      }
      if (el.matches(".mention")) el.classList.toggle("is-me", el.getAttribute("data-mention") === me);
      if (el.matches(".reaction")) el.classList.toggle("mine", hasId(el.getAttribute("data-users"), me));
      if (el.matches(".preview-author")) el.classList.toggle("is-me", el.getAttribute("data-author") === me);
      // What one may not do to oneself (an admin deactivating their own account: refused).
      if (el.matches("[data-not-self]")) el.hidden = el.getAttribute("data-not-self") === me;
      if (el.matches("[data-author-only], [data-author-or-owner]")) {
        var m = el.closest("article.message");
        var mine = !!m && m.getAttribute("data-author") === me;
        var members = document.querySelector(".members[data-owner]");
        var owns = !!members && members.getAttribute("data-owner") === me;
        el.hidden = !(mine || (owns && el.hasAttribute("data-author-or-owner")));
      }
      if (el.matches("[data-reader]")) {
        var msg = el.closest("article.message");
        var reader = el.getAttribute("data-reader");
        // My own marker and an author's marker on their own message say nothing to me.
        el.hidden = reader === me || !!(msg && msg.getAttribute("data-author") === reader);
      }
      if (el.matches("[data-owner-only]")) {
        var owner = el.closest("[data-owner]");
        el.hidden = !owner || owner.getAttribute("data-owner") !== me;
      }
      if (el.matches("li.conv-row")) {
        el.classList.toggle("muted", isMuted(el.getAttribute("data-conversation")));
        var current = el.getAttribute("data-conversation") === open;
        el.classList.toggle("current", current);
        var a = el.querySelector("a");
        if (a) {
          if (current) a.setAttribute("aria-current", "page");
          else a.removeAttribute("aria-current");
        }
      }
      if (el.matches("time[datetime]")) localTime(el);
    });
  }

  // ---- ordered lists ----------------------------------------------------------------------------
  // A container with data-order="asc|desc" keeps its children sorted by data-key, the same order
  // the server renders: keys are space-separated parts, compared as numbers where both are.

  function compareKeys(a, b) {
    var x = (a || "").split(" "), y = (b || "").split(" ");
    for (var i = 0; i < Math.max(x.length, y.length); i++) {
      var p = x[i] || "", q = y[i] || "";
      var np = Number(p), nq = Number(q);
      var c = (p !== "" && q !== "" && !isNaN(np) && !isNaN(nq)) ? np - nq : (p < q ? -1 : p > q ? 1 : 0);
      if (c) return c;
    }
    return 0;
  }

  function placeSorted(list, el) {
    var desc = list.getAttribute("data-order") === "desc";
    var key = el.getAttribute("data-key");
    var kids = list.children;
    for (var i = 0; i < kids.length; i++) {
      if (kids[i] === el) continue;
      var c = compareKeys(key, kids[i].getAttribute("data-key"));
      if (desc ? c > 0 : c < 0) {
        list.insertBefore(el, kids[i]);
        return;
      }
    }
    list.appendChild(el);
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

  // ---- history: scrolling to the top loads the previous page in place ---------------------------

  var loadingOlder = false;

  function loadOlder() {
    var s = scroller();
    var list = liveList();
    var link = document.querySelector("p.older a[rel=prev]");
    if (!s || !list || !link || loadingOlder) return;
    loadingOlder = true;
    fetch(link.href, { credentials: "same-origin" }).then(answered).then(function (r) { return r.text(); }).then(function (page) {
      var doc = new DOMParser().parseFromString(page, "text/html");
      var first = list.firstElementChild;
      var height = s.scrollHeight;
      doc.querySelectorAll(".messages article.message").forEach(function (m) {
        if (byId(m.id)) return;
        var el = document.importNode(m, true);
        list.insertBefore(el, first);
        decorate(el);
      });
      // The day label above the page belongs to its new first message.
      var oldDay = s.querySelector(".page-day");
      if (oldDay) oldDay.remove();
      var newDay = doc.querySelector(".page-day");
      if (newDay) list.parentNode.insertBefore(document.importNode(newDay, true), list);
      s.scrollTop += s.scrollHeight - height;
      var next = doc.querySelector("p.older a[rel=prev]");
      if (next) link.setAttribute("href", next.getAttribute("href"));
      else link.closest("p.older").remove();
      loadingOlder = false;
    }, function () { loadingOlder = false; });
  }

  // ---- read markers -----------------------------------------------------------------------------

  var lastReadPosted = 0;
  var readTimer = null;

  // The live message list of the open conversation (an older page has none: nothing is read there).
  function liveList() {
    return document.querySelector(".messages[data-live]");
  }

  function newestMessageId(list) {
    var last = list && list.querySelector("article.message:last-of-type");
    if (!last) return 0;
    return Number(last.id.replace("message-", "")) || 0;
  }

  function reading() {
    var s = scroller();
    return !!liveList() && document.visibilityState === "visible" && !!s && nearBottom(s);
  }

  function markRead() {
    var list = liveList();
    if (!list || !reading()) return;
    var cid = openConversationId();
    var id = newestMessageId(list);
    if (!id || id <= lastReadPosted) return;
    clearTimeout(readTimer);
    readTimer = setTimeout(function () {
      lastReadPosted = id;
      // Sent in the background, perhaps while its user types: a 401 (the session ended) is left
      // to their next send, as for the typing signal, so a reload does not cut their typing.
      postRaw("/conversations/" + cid + "/read", "message_id=" + id)
        .catch(function () { lastReadPosted = 0; });
    }, 300);
  }

  // ---- applying frames --------------------------------------------------------------------------

  // A new message: follow it if the reader was at the bottom (or wrote it), and count it as
  // unread unless it is mine or I am reading that conversation right now. `shown` is false on
  // pages without that conversation's live message list.
  function afterMessage(el, shown, wasNear) {
    var author = el.getAttribute("data-author");
    stopTyping(author);
    if (author !== me && !el.matches(".note") && applyingDirect) notify(el);
    var s = scroller();
    if (shown && s) {
      if (author === me || wasNear) toBottom();
      else {
        var b = document.querySelector(".new-messages");
        if (b) b.hidden = false;
      }
    }
    // Notes about the group ("ann added @cat") are never unread.
    if (author !== me && !el.matches(".note") && !(shown && reading())) {
      var row = byId(el.getAttribute("data-row"));
      if (row) {
        var u = row.querySelector(".unread");
        if (u && hasId(el.getAttribute("data-mentions"), me)) {
          u.setAttribute("data-mentions", String(Number(u.getAttribute("data-mentions") || "0") + 1));
        }
        setCount(u, count(u) + 1);
      } else if (!document.querySelector("#conversation-list") &&
                 !isMuted(el.getAttribute("data-conversation"))) {
        var badge = byId("badge-unread");
        setCount(badge, count(badge) + 1);
      }
    }
    if (shown) markRead();
    updateTitle();
  }

  // ---- desktop notifications and sound: one per browser (the tab holding the stream) ------------

  var applyingDirect = false; // the frame being applied came from this tab's own stream

  function notify(el) {
    if (document.visibilityState === "visible") return;
    var cid = el.getAttribute("data-conversation");
    if (isMuted(cid)) return;
    if (prefs("mentions").indexOf(cid) >= 0 && !hasId(el.getAttribute("data-mentions"), me)) return;
    if (localStorage.getItem("parley-sound") === "1") beep();
    if (!window.Notification || Notification.permission !== "granted") return;
    var who = el.querySelector(".author .name");
    var text = (el.querySelector(".body") || el).textContent.replace(/\s+/g, " ").trim();
    if (!text && el.querySelector(".attachment")) text = "📎 Attachment";
    var n = new Notification(who ? who.textContent : "Parley", {
      body: text.length > 140 ? text.slice(0, 140) + "…" : text,
      tag: "parley-" + cid,
      icon: "/static/favicon.svg"
    });
    n.onclick = function () {
      window.focus();
      location.href = "/conversations/" + cid + "#start";
      n.close();
    };
  }

  function beep() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      var ctx = new Ctx();
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.08, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.25);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no sound, then */ }
  }

  // Settings: permission is asked on a click, never on load; the sound is this browser's choice.
  var enable = byId("enable-notifications");
  if (enable && window.Notification) {
    var state = byId("notification-state");
    var show = function () {
      if (state) state.textContent = Notification.permission === "granted" ? "Desktop notifications are on in this browser." :
        Notification.permission === "denied" ? "This browser blocks notifications from Parley; allow them in its site settings." : "";
      enable.hidden = Notification.permission !== "default";
    };
    enable.addEventListener("click", function () { Notification.requestPermission().then(show); });
    show();
  }
  var sound = byId("notification-sound");
  if (sound) {
    sound.checked = localStorage.getItem("parley-sound") === "1";
    sound.closest("label").hidden = false;
    sound.addEventListener("change", function () { localStorage.setItem("parley-sound", sound.checked ? "1" : "0"); });
  }

  // ---- installable app and Web Push ------------------------------------------------------------
  // The service worker only keeps an offline page and shows pushes (static/sw.js). Push is turned
  // on per browser from the settings page; the server keeps the subscription.

  var swReady = null;
  if ("serviceWorker" in navigator) {
    swReady = navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(function () {
      return navigator.serviceWorker.ready;
    }).catch(function () { return null; });
  }

  function b64urlToBytes(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function bytesToB64url(buf) {
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  var pushBox = byId("push-settings");
  if (pushBox) {
    var pushOn = byId("push-enable");
    var pushOff = byId("push-disable");
    var pushState = byId("push-state");
    var say = function (t) { if (pushState) pushState.textContent = t; };
    var supported = swReady && "PushManager" in window && window.Notification;
    var current = function () {
      return swReady.then(function (reg) { return reg ? reg.pushManager.getSubscription() : null; });
    };
    var refresh = function () {
      if (!supported) {
        say("This browser cannot receive push notifications (on iPhone and iPad, add Parley to the home screen first).");
        return;
      }
      current().then(function (sub) {
        pushOn.hidden = !!sub;
        pushOff.hidden = !sub;
        if (Notification.permission === "denied") say("This browser blocks notifications from Parley; allow them in its site settings.");
      });
    };
    var send = function (sub) {
      var json = sub.toJSON();
      var form = new URLSearchParams();
      form.set("endpoint", sub.endpoint);
      form.set("p256dh", (json.keys && json.keys.p256dh) || bytesToB64url(sub.getKey("p256dh")));
      form.set("auth", (json.keys && json.keys.auth) || bytesToB64url(sub.getKey("auth")));
      return post("/push/subscriptions", form.toString()).then(function (r) {
        if (r.ok) return true;
        return r.text().then(function (t) {
          var p = new DOMParser().parseFromString(t, "text/html").querySelector("main p");
          var msg = p ? p.textContent.trim() : "";
          throw new Error(msg || "The server refused the subscription.");
        });
      });
    };
    pushOn.addEventListener("click", function () {
      pushOn.disabled = true;
      Notification.requestPermission().then(function (perm) {
        if (perm !== "granted") throw new Error("Notifications are not allowed in this browser.");
        return swReady;
      }).then(function (reg) {
        if (!reg) throw new Error("Push needs Parley to be served over https.");
        return reg.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: b64urlToBytes(pushBox.getAttribute("data-vapid-key"))
        });
      }).then(send).then(function () {
        say("Push is on for this device.");
      }).catch(function (e) {
        say(e && e.message ? e.message : "Push could not be turned on.");
      }).then(function () { pushOn.disabled = false; refresh(); });
    });
    pushOff.addEventListener("click", function () {
      pushOff.disabled = true;
      current().then(function (sub) {
        if (!sub) return null;
        var form = new URLSearchParams();
        form.set("endpoint", sub.endpoint);
        return post("/push/subscriptions/delete", form.toString()).then(function () { return sub.unsubscribe(); });
      }).then(function () {
        say("Push is off for this device.");
      }).catch(function () {
        say("Push could not be turned off.");
      }).then(function () { pushOff.disabled = false; refresh(); });
    });
    refresh();
  }

  // ---- typing ---------------------------------------------------------------------------------
  // "ann is typing…" fades 5 s after the last signal, or when ann's message arrives.

  var typers = {}; // user id -> { name, timer }

  function renderTyping(box) {
    var names = Object.keys(typers).map(function (u) { return typers[u].name; });
    box.textContent = names.length === 0 ? "" :
      names.length === 1 ? names[0] + " is typing…" :
      names.length === 2 ? names[0] + " and " + names[1] + " are typing…" :
      "Several people are typing…";
  }

  function showTyping(box, el) {
    var uid = el.getAttribute("data-typer");
    if (!uid || uid === me) return;
    if (typers[uid]) clearTimeout(typers[uid].timer);
    typers[uid] = {
      name: el.textContent,
      timer: setTimeout(function () { delete typers[uid]; renderTyping(box); }, 5000)
    };
    renderTyping(box);
  }

  function stopTyping(uid) {
    if (!typers[uid]) return;
    clearTimeout(typers[uid].timer);
    delete typers[uid];
    var box = document.querySelector(".typing");
    if (box) renderTyping(box);
  }

  // ---- @mentions: typing "@" in the composer offers the conversation's members ------------------

  function memberHandles() {
    var seen = {};
    var out = [];
    document.querySelectorAll(".conversation .member-list .handle, #conversation-title .handle").forEach(function (h) {
      var u = h.textContent.replace(/^@/, "");
      if (u && !seen[u]) { seen[u] = true; out.push(u); }
    });
    return out;
  }

  var suggest = null;

  function closeSuggest() {
    if (suggest) suggest.remove();
    suggest = null;
  }

  function offerMentions(area) {
    var upto = area.value.slice(0, area.selectionStart);
    var m = /(^|[^\w])@(\w*)$/.exec(upto);
    closeSuggest();
    if (!m) return;
    var prefix = m[2].toLowerCase();
    var names = memberHandles().filter(function (u) { return u.toLowerCase().indexOf(prefix) === 0; }).slice(0, 8);
    // Nothing to offer, or the one name offered is already typed in full: Enter sends.
    if (!names.length || (names.length === 1 && names[0].toLowerCase() === prefix)) return;
    suggest = document.createElement("ul");
    suggest.className = "mention-suggest";
    suggest.setAttribute("role", "listbox");
    names.forEach(function (u, i) {
      var li = document.createElement("li");
      li.textContent = "@" + u;
      li.setAttribute("role", "option");
      if (i === 0) li.className = "active";
      li.addEventListener("mousedown", function (e) { e.preventDefault(); pickMention(area, u); });
      suggest.appendChild(li);
    });
    area.parentNode.insertBefore(suggest, area);
    // Above the text box, aligned with it (not with the form's padded edge).
    suggest.style.left = area.offsetLeft + "px";
  }

  function pickMention(area, u) {
    var at = area.selectionStart;
    var before = area.value.slice(0, at).replace(/@\w*$/, "@" + u + " ");
    area.value = before + area.value.slice(at);
    area.setSelectionRange(before.length, before.length);
    closeSuggest();
    area.focus();
  }

  document.addEventListener("input", function (e) {
    if (e.target.matches && e.target.matches("form.composer textarea")) offerMentions(e.target);
  });

  // Arrow keys move through the offer; Enter or Tab takes it; Escape closes it.
  document.addEventListener("keydown", function (e) {
    if (!suggest || !e.target.matches || !e.target.matches("form.composer textarea")) return;
    var items = Array.prototype.slice.call(suggest.children);
    var i = items.findIndex(function (li) { return li.classList.contains("active"); });
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      e.stopImmediatePropagation();
      items[i].classList.remove("active");
      items[(i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].classList.add("active");
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      e.stopImmediatePropagation();
      pickMention(e.target, items[i].textContent.slice(1));
    } else if (e.key === "Escape") {
      closeSuggest();
    }
  }, true);

  var lastTyping = 0;
  document.addEventListener("input", function (e) {
    var t = e.target;
    if (!t.matches || !t.matches("form.composer textarea") || !t.value.trim()) return;
    var now = Date.now();
    if (now - lastTyping < 3000) return;
    lastTyping = now;
    // Only a courtesy to the others: its answer is not looked at. A 401 here (the session
    // ended) must not reload the page while its user is still typing, which would lose the
    // rest of what they type; their send leads them to the login with the whole draft.
    postRaw("/conversations/" + t.form.getAttribute("data-composer") + "/typing", "").catch(function () {});
  });

  // Children marked data-keep (a message's receipts) survive a replace of their record, and so
  // does the highlight of the message a permanent link opened the page at.
  function keepParts(oldEl, newEl) {
    if (oldEl.classList.contains("highlight")) newEl.classList.add("highlight");
    newEl.querySelectorAll("[data-keep][id]").forEach(function (part) {
      var old = oldEl.querySelector("#" + CSS.escape(part.id));
      if (old) part.replaceWith(old);
    });
  }

  function insert(action, target, el) {
    var existing = byId(el.id);
    if (existing && existing.parentNode === target) {
      // Already here (a replay, or the reply to our own send): refresh in place.
      keepParts(existing, el);
      existing.replaceWith(el);
      return false;
    }
    if (existing) existing.remove(); // a moved record (a read marker)
    if (target.hasAttribute("data-order")) placeSorted(target, el);
    else if (action === "prepend") target.insertBefore(el, target.firstChild);
    else target.appendChild(el);
    return true;
  }

  function setPresence(dot, online) {
    dot.classList.toggle("online", online);
    dot.title = online ? "Online" : "Offline";
    if (dot.hasAttribute("aria-label")) dot.setAttribute("aria-label", online ? "online" : "offline");
  }

  function apply(action, html) {
    var wrapper = parse(html);
    if (!wrapper) return;
    var targetId = wrapper.getAttribute("data-target");
    var content = wrapper.content || wrapper;
    var el = content.firstElementChild;
    var target = byId(targetId);
    if (action === "reload") {
      if (targetId === "main" || target) location.reload();
      return;
    }
    if (action === "presence") {
      if (!el) return;
      if (targetId === "presence-all") {
        var online = (el.getAttribute("data-online") || "").split(" ");
        document.querySelectorAll("[data-presence]").forEach(function (dot) {
          setPresence(dot, online.indexOf(dot.getAttribute("data-presence")) >= 0);
        });
      } else {
        var on = el.classList.contains("online");
        document.querySelectorAll('[data-presence="' + el.getAttribute("data-presence") + '"]').forEach(function (dot) {
          setPresence(dot, on);
        });
      }
      return;
    }
    if (action === "rename" && el && el.hasAttribute("data-title-of")) {
      var gid = el.getAttribute("data-title-of");
      document.querySelectorAll('[data-title-of="' + gid + '"]').forEach(function (n) {
        n.textContent = el.textContent;
      });
      document.querySelectorAll('[data-group-initials-of="' + gid + '"]').forEach(function (n) {
        n.textContent = el.getAttribute("data-initials");
      });
      if (body.getAttribute("data-title-group") === gid) {
        document.title = document.title.replace(/^(\(\d+\) )?.*( · Parley)$/, "$1" + el.textContent + "$2");
      }
      return;
    }
    if (action === "rename") {
      if (!el) return;
      var uid = el.getAttribute("data-name-of");
      if (body.getAttribute("data-title-of") === uid) {
        // A direct conversation's tab is titled with the other person's name.
        document.title = document.title.replace(/^(\(\d+\) )?.*( · Parley)$/, "$1" + el.textContent + "$2");
      }
      document.querySelectorAll('[data-name-of="' + uid + '"]').forEach(function (n) {
        n.textContent = el.textContent;
      });
      document.querySelectorAll('[data-initials-of="' + uid + '"]').forEach(function (n) {
        n.textContent = el.getAttribute("data-initials");
      });
      return;
    }
    if (action === "typing") {
      if (target && el) showTyping(target, el);
      return;
    }
    var mentionsDelta = wrapper.getAttribute("data-delta-mentions");
    if (mentionsDelta) {
      // A message that named me, unread, was deleted or edited: the row's "@" follows.
      if (target) {
        var named = Number(target.getAttribute("data-mentions") || "0") + Number(mentionsDelta);
        target.setAttribute("data-mentions", String(Math.max(0, named)));
        setCount(target, count(target));
      }
      return;
    }
    var delta = wrapper.getAttribute("data-delta");
    if (delta) {
      setCount(target, count(target) + Number(delta));
      updateTitle();
      return;
    }
    if (action === "remove") {
      // A group's row goes when I am no longer in it: my settings for it go too (a fresh page
      // lists only my memberships, and a later invitation starts on "all").
      var gone = /^conversation-(\d+)$/.exec(targetId || "");
      if (gone) forgetPrefs(gone[1]);
      // A search result of a deleted message goes with it.
      document.querySelectorAll('[data-removed-with="' + CSS.escape(targetId || "") + '"]').forEach(function (n) {
        n.remove();
      });
    }
    if (!target) {
      if (el && el.matches("article.message") && (action === "append" || action === "prepend")) {
        afterMessage(el, false, false);
      }
      return;
    }
    if (action === "remove") {
      target.remove();
      updateTitle();
      return;
    }
    if (!el) return;
    if (action === "replace") {
      keepParts(target, el);
      // A tapped message keeps its focus (and so its actions) when someone reacts to it.
      var focused = document.activeElement === target;
      target.replaceWith(el);
      if (focused && el.focus) el.focus({ preventScroll: true });
      decorate(el);
      if (el.id === "notify-prefs") {
        document.querySelectorAll("li.conv-row").forEach(function (r) { decorate(r); });
        syncNotifyForms();
      }
      if (el.matches(".members")) {
        // A new owner: who may delete which message changes with it.
        document.querySelectorAll("[data-author-or-owner]").forEach(function (a) { decorate(a); });
      }
      if (el.matches(".preview")) {
        // The row's place follows its newest activity.
        var row = el.closest("[data-key]");
        if (row && row.parentNode && row.parentNode.hasAttribute("data-order")) {
          row.setAttribute("data-key", el.getAttribute("data-activity") + " " + row.getAttribute("data-conversation"));
          placeSorted(row.parentNode, row);
        }
      }
      updateTitle();
      return;
    }
    if (action === "append" || action === "prepend") {
      // Decide before the insert whether the reader is at the bottom: a tall message must not
      // push them out of the "near the bottom" zone.
      var s = scroller();
      var inList = !!(s && s.contains(target));
      var wasNear = inList && nearBottom(s);
      var isNew = insert(action, target, el);
      decorate(el);
      if (el.matches("article.message")) {
        if (isNew) afterMessage(el, inList, wasNear);
      } else if (wasNear) {
        toBottom();
      }
      updateTitle();
    }
  }

  // ---- the stream: one per browser --------------------------------------------------------------
  // Browsers allow six HTTP/1.1 connections per site, so one tab holds the stream (a Web Lock)
  // and shares its frames with the others (BroadcastChannel); when it closes, another takes over.

  var ACTIONS = ["append", "prepend", "replace", "remove", "rename", "presence", "typing", "reload"];
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
      var ephemeral = { presence: true, typing: true, reload: true };
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
          // 401 (the session ended) and anything else: every tab of this browser reloads (into
          // the login page when the session is gone), at once if the server is up.
          var all = function () {
            onFrame({ action: "reload", data: '<template data-target="main"></template>', id: 0 });
          };
          fetch("/events?probe=1", { cache: "no-store", credentials: "same-origin" }).then(function (r) {
            if (r.status === 429) {
              r.text().then(status);
              setTimeout(function () { openStream(onFrame).then(release); }, 60000);
            } else if (r.ok || r.status === 401) all();
            else setTimeout(all, 5000);
          }, function () { setTimeout(all, 5000); });
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
          applyingDirect = true;
          try { handle(frame); } finally { applyingDirect = false; }
          channel.postMessage(frame);
        });
      });
    } else {
      openStream(function (frame) {
        applyingDirect = true;
        try { handle(frame); } finally { applyingDirect = false; }
      });
    }
  }

  // ---- one message: reply, jump to a quote, edit inline, delete, react ---------------------------

  function postRaw(url, body) {
    return fetch(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/x-www-form-urlencoded" }, FETCH_HEADER),
      body: body,
      credentials: "same-origin"
    });
  }

  function post(url, body) {
    return postRaw(url, body).then(answered);
  }

  // A message partial from the server replaces the one on the page (its receipts stay).
  function replaceMessage(html) {
    var el = parse(html);
    var old = el && byId(el.id);
    if (!old) return;
    keepParts(old, el);
    old.replaceWith(el);
    decorate(el);
  }

  function setReply(form, id) {
    var msg = byId("message-" + id);
    var box = form.querySelector(".replying");
    var input = form.querySelector("input[name=reply_to]");
    if (!box || !input) return;
    input.value = id ? String(id) : "";
    box.hidden = !id;
    if (msg) {
      var who = msg.querySelector(".author .name");
      var text = (msg.querySelector(".body").textContent || "").replace(/\s+/g, " ").trim();
      box.querySelector(".replying-to").textContent =
        (who ? who.textContent : "") + ": " + (text.length > 80 ? text.slice(0, 80) + "…" : text);
    }
  }

  function startEdit(link) {
    var msg = link.closest("article.message");
    if (!msg || msg.querySelector("form.inline-edit")) return;
    fetch(link.href, { credentials: "same-origin" }).then(answered).then(function (r) { return r.text(); }).then(function (page) {
      var doc = new DOMParser().parseFromString(page, "text/html");
      var source = doc.querySelector("#edit-body");
      var body = msg.querySelector(".body");
      if (!source || !body) return;
      var form = document.createElement("form");
      form.className = "inline-edit";
      form.action = link.href.replace(/\/edit$/, "");
      var area = document.createElement("textarea");
      area.name = "body";
      area.value = source.value;
      area.rows = Math.min(8, area.value.split("\n").length + 1);
      var hint = document.createElement("p");
      hint.className = "help";
      hint.textContent = "Enter to save, Escape to cancel";
      form.appendChild(area);
      form.appendChild(hint);
      body.hidden = true;
      body.parentNode.insertBefore(form, body.nextSibling);
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      var done = function () { form.remove(); body.hidden = false; };
      area.addEventListener("keydown", function (e) {
        if (e.key === "Escape") { e.preventDefault(); done(); }
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          post(form.action, "body=" + encodeURIComponent(area.value)).then(function (r) {
            return r.text().then(function (t) { return { ok: r.ok, text: t }; });
          }).then(function (r) {
            if (r.ok) replaceMessage(r.text);
            else hint.textContent = r.text;
          });
        }
      });
    });
  }

  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[data-reply], a.cancel-reply, a.quote, a[data-edit], a[data-delete]");
    if (!a) return;
    var composer = document.querySelector("form.composer");
    if (a.matches("[data-reply]") && composer && composer.querySelector("input[name=reply_to]")) {
      e.preventDefault();
      setReply(composer, Number(a.getAttribute("data-reply")));
      composer.querySelector("textarea").focus();
    } else if (a.matches(".cancel-reply") && composer) {
      e.preventDefault();
      setReply(composer, 0);
    } else if (a.matches(".quote")) {
      var original = byId("message-" + a.getAttribute("data-quote"));
      if (original) {
        e.preventDefault();
        original.scrollIntoView({ block: "center", behavior: "smooth" });
        original.classList.add("flash");
        setTimeout(function () { original.classList.remove("flash"); }, 1600);
      }
    } else if (a.matches("[data-edit]")) {
      e.preventDefault();
      startEdit(a);
    } else if (a.matches("[data-delete]")) {
      e.preventDefault();
      if (window.confirm("Delete this message for everyone?")) {
        post(a.href, "").then(function (r) {
          if (r.ok) {
            var m = a.closest("article.message");
            if (m) m.remove();
          }
        });
      }
    }
  });

  // Reactions without a page load; the live frame brings everyone else's.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches || !form.action || !/\/reactions$/.test(form.action)) return;
    e.preventDefault();
    var emoji = e.submitter && e.submitter.name === "emoji" ? e.submitter.value : "";
    var typed = form.querySelector("input[name=emoji]");
    if (!emoji && typed) emoji = typed.value;
    var menu = form.closest("details");
    var error = form.querySelector(".field-error");
    post(form.action, "emoji=" + encodeURIComponent(emoji)).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, text: t }; });
    }).then(function (r) {
      if (r.ok) {
        if (menu) menu.open = false;
        replaceMessage(r.text);
        return;
      }
      // Refused (not one emoji): say why, in the menu, which stays open.
      if (!error) {
        error = document.createElement("p");
        error.className = "field-error";
        error.setAttribute("role", "alert");
        form.appendChild(error);
      }
      error.textContent = r.text;
    });
  });

  // ---- the composer -----------------------------------------------------------------------------

  // The time first, as the server makes them (views::partials::new_client_id): later keys sort
  // later, which keeps the server's index of them writing at one edge.
  function newClientId() {
    var rnd = "";
    if (window.crypto && crypto.getRandomValues) {
      var b = crypto.getRandomValues(new Uint8Array(5));
      for (var i = 0; i < b.length; i++) rnd += ("0" + b[i].toString(16)).slice(-2);
    } else {
      rnd = Math.random().toString(16).slice(2, 12);
    }
    return ("000000000000" + Date.now().toString(16)).slice(-12) + rnd;
  }

  // ---- attachments: the file picker, drag and drop, paste -----------------------------------------

  var pending = [];

  function sizeLabel(n) {
    if (n < 1000) return n + " B";
    var units = ["KB", "MB", "GB"], v = n, i = -1;
    do { v /= 1000; i++; } while (v >= 1000 && i < 2);
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + units[i];
  }

  function showPending(form) {
    var ul = form && form.querySelector(".pending-files");
    if (!ul) return;
    ul.textContent = "";
    pending.forEach(function (f, i) {
      var li = document.createElement("li");
      li.textContent = (f.name || "pasted file") + " (" + sizeLabel(f.size) + ") ";
      var x = document.createElement("button");
      x.type = "button";
      x.className = "small";
      x.setAttribute("data-unattach", String(i));
      x.setAttribute("aria-label", "Remove " + (f.name || "file"));
      x.textContent = "×";
      li.appendChild(x);
      ul.appendChild(li);
    });
    ul.hidden = !pending.length;
  }

  function attach(form, files) {
    if (!form || !files || !files.length) return false;
    Array.prototype.forEach.call(files, function (f) { pending.push(f); });
    showPending(form);
    return true;
  }

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("form.composer input[type=file]")) {
      attach(t.form, t.files);
      t.value = "";
    }
  });

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("form.composer [data-unattach]");
    if (!b) return;
    pending.splice(Number(b.getAttribute("data-unattach")), 1);
    showPending(b.form);
  });

  document.addEventListener("paste", function (e) {
    var form = e.target.closest && e.target.closest("form.composer");
    var files = e.clipboardData && e.clipboardData.files;
    if (form && files && files.length && attach(form, files)) e.preventDefault();
  });

  function dragsFiles(e) {
    return e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types || [], "Files") >= 0;
  }

  document.addEventListener("dragover", function (e) {
    var form = document.querySelector("form.composer");
    if (!form || !form.querySelector("input[type=file]") || !dragsFiles(e)) return;
    e.preventDefault();
    form.classList.add("dropping");
  });

  document.addEventListener("dragleave", function (e) {
    if (e.relatedTarget) return;
    var form = document.querySelector("form.composer");
    if (form) form.classList.remove("dropping");
  });

  document.addEventListener("drop", function (e) {
    var form = document.querySelector("form.composer");
    if (!form || !form.querySelector("input[type=file]") || !dragsFiles(e)) return;
    e.preventDefault();
    form.classList.remove("dropping");
    attach(form, e.dataTransfer.files);
    var box = form.querySelector("textarea");
    if (box) box.focus();
  });

  function sendMessage(form) {
    var text = form.querySelector("textarea");
    var err = form.querySelector(".field-error");
    var button = form.querySelector("button[type=submit]");
    if (!text || (!text.value.trim() && !pending.length)) return;
    // Text only: the url-encoded form as always. With files: multipart, the files chosen,
    // dropped or pasted (kept in `pending`, not in the file input).
    var data = pending.length ? new FormData() : new URLSearchParams();
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && el.type !== "file" && el.type !== "submit") data.append(el.name, el.value);
    });
    pending.forEach(function (f) { data.append("files", f, f.name); });
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      headers: FETCH_HEADER,
      body: data,
      credentials: "same-origin"
    }).then(answered).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, status: r.status, text: t }; });
    }).then(function (r) {
      button.disabled = false;
      if (r.ok) {
        var list = liveList();
        var el = parse(r.text);
        if (list && el) {
          var isNew = insert("append", list, el);
          decorate(el);
          if (isNew) afterMessage(el, true, true);
        }
        text.value = "";
        pending = [];
        showPending(form);
        lastTyping = 0;
        form.querySelector("input[name=client_id]").value = newClientId();
        setReply(form, 0);
        if (err) err.textContent = "";
        text.removeAttribute("aria-invalid");
        toBottom();
      } else {
        // 422: a broken rule; 429: sending too fast; 413: files too large. The draft (and its
        // files) stay either way.
        if (err) err.textContent = r.status === 422 || r.status === 429 || r.status === 413 ? r.text : "Could not send: " + (r.text || r.status);
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
    // Up in an empty composer edits my last message.
    if (t.matches && t.matches("form.composer textarea") && e.key === "ArrowUp" && !t.value) {
      var mine = document.querySelectorAll('.messages[data-live] article.message[data-author="' + me + '"] a[data-edit]');
      if (mine.length) {
        e.preventDefault();
        startEdit(mine[mine.length - 1]);
        return;
      }
    }
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
  var s = scroller();
  if (s) {
    var divider = byId("unread-divider");
    var opened = document.querySelector("article.message.highlight");
    if (opened) {
      // A permanent link: the message it names, in the middle of its context.
      s.scrollTop += opened.getBoundingClientRect().top - s.getBoundingClientRect().top - s.clientHeight / 3;
    } else if (divider && liveList()) {
      // Land on the first unread message, the divider just above it.
      s.scrollTop += divider.getBoundingClientRect().top - s.getBoundingClientRect().top - 8;
    } else if (liveList()) {
      toBottom();
    }
    s.addEventListener("scroll", function () {
      if (s.scrollTop < 200) loadOlder();
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
  if (composer) composer.focus();
  startStream();
})();
