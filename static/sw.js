// Parley's service worker. It does three things and nothing else:
// - keeps one offline page (and the stylesheet and icon it shows), fetched at install, and shows it
//   when a page cannot be loaded at all; no other response is ever cached (pages are private);
// - shows a notification for a Web Push message (JSON: title, body, url, tag);
// - on a click, focuses a Parley window (taking it to the conversation) or opens one.
"use strict";

var CACHE = "parley-offline-v1";
var OFFLINE = "/offline";
// The offline page and what it shows; public files only.
var KEPT = [OFFLINE, "/static/app.css", "/static/favicon.svg"];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      return cache.addAll(KEPT);
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) {
        return caches.delete(k);
      }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var req = event.request;
  if (req.method !== "GET") return;
  var url = new URL(req.url);
  if (req.mode === "navigate") {
    // The network, always; the offline page only when there is no answer at all.
    event.respondWith(
      fetch(req).catch(function () {
        return caches.match(OFFLINE, { cacheName: CACHE }).then(function (r) {
          return r || Response.error();
        });
      })
    );
  } else if (url.origin === self.location.origin && KEPT.indexOf(url.pathname) > 0) {
    // What the offline page needs: the network first, the kept copy when it is down.
    event.respondWith(
      fetch(req).catch(function () {
        return caches.match(url.pathname, { cacheName: CACHE }).then(function (r) {
          return r || Response.error();
        });
      })
    );
  }
});

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { body: event.data ? event.data.text() : "" };
  }
  var title = data.title || "Parley";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || "",
      tag: data.tag || undefined,
      renotify: !!data.tag,
      icon: "/static/icons/icon-192.png",
      badge: "/static/icons/icon-192.png",
      data: { url: data.url || "/conversations" }
    })
  );
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin);
  if (url.origin !== self.location.origin) url = new URL("/", self.location.origin);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
      var same = list.find(function (c) { return new URL(c.url).pathname === url.pathname; });
      if (same) return same.focus();
      var any = list.find(function (c) { return "navigate" in c; });
      if (any) return any.navigate(url.href).then(function (c) { return (c || any).focus(); });
      return self.clients.openWindow(url.href);
    })
  );
});
