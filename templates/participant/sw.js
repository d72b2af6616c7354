/* Service worker of the participant pages: the survey opens offline once visited, and answers
   sent while offline wait in IndexedDB ("outbox") until the connection returns. */
"use strict";
var CACHE = "participant-{{ version }}";
var ASSETS = {{ assets_json|safe }};
var SIGN_OUT = "{% url 'participant-sign-out' %}";

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll(ASSETS);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) {
      return key.indexOf("participant-") === 0 && key !== CACHE;
    }).map(function (key) { return caches.delete(key); }));
  }).then(function () { return self.clients.claim(); }));
});

// Nothing of the last person shows offline. Every page of a signed-in participant says whose
// it is (X-Offline-Owner, a keyed hash of the participant): before the worker shows a page of
// another owner, it forgets the copies of any other; a page of a participant with a PIN (a
// shared phone, X-Offline-Copy: no) makes it forget them all, as does signing out (the worker
// sees the sign-out form go by and shows the signed-out page only once the copies are gone;
// signed_out.js also posts "signed-out", for a worker not in control of the page).
// Each of those moves starts a new era: a page fetched before it (answered for the last
// person, arriving late) is shown but never kept, and a copy still being written when it came
// is deleted once written. No page is served from the cache until a forgetting is done, and
// none at all if it failed.
var OWNER = "X-Offline-Owner";
var WRITES_AWAITED_MS = 2000;
var pending = new Set();
var forgetting = Promise.resolve(true); // true: done; false: it failed
var lastOwner = null;
var era = 0;

function isPage(request) {
  return new URL(request.url).pathname.indexOf("/static/") !== 0;
}

// Every kept page but those of `owner` (all of them when it is null).
function pagesForget(owner) {
  return caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) {
      return key.indexOf("participant-") === 0;
    }).map(function (key) {
      return caches.open(key).then(function (cache) {
        return cache.keys().then(function (requests) {
          return Promise.all(requests.filter(isPage).map(function (request) {
            return cache.match(request).then(function (copy) {
              if (!owner || !copy || copy.headers.get(OWNER) !== owner) {
                return cache.delete(request);
              }
            });
          }));
        });
      });
    }));
  });
}

function forget(owner) {
  era += 1;
  // Copies being written are waited for a moment (a stalled one is deleted once written).
  var written = Promise.race([
    Promise.all(Array.from(pending)),
    new Promise(function (resolve) { setTimeout(resolve, WRITES_AWAITED_MS); }),
  ]);
  var run = function () {
    return pagesForget(owner).then(function () { return true; }, function () { return false; });
  };
  forgetting = Promise.all([written, forgetting]).then(run, run);
  return forgetting;
}

function signedOut() {
  lastOwner = null;
  return forget(null);
}

self.addEventListener("message", function (event) {
  if (!event.data || event.data.type !== "signed-out") return;
  event.waitUntil(signedOut());
});

// A page arrived from the server, fetched in era `since`: whose it is decides which copies
// stay. Resolves to whether the page may be kept.
function pageSeen(response, since) {
  if (since !== era) return forgetting.then(function () { return false; });
  if (response.headers.get("X-Offline-Copy") === "no") {
    lastOwner = null;
    return forget(null).then(function () { return false; });
  }
  var owner = response.headers.get(OWNER);
  if (!owner) return forgetting.then(function () { return false; });
  var ready = forgetting;
  if (owner !== lastOwner) {
    lastOwner = owner;
    ready = forget(owner);
  }
  var current = era;
  return ready.then(function (done) { return done && current === era; });
}

function keep(request, copy) {
  var since = era;
  var writing = caches.open(CACHE).then(function (cache) {
    return cache.put(request, copy).then(function () {
      // A forgetting came while this was written: the copy goes too.
      if (since !== era) return cache.delete(request);
    });
  });
  pending.add(writing);
  var done = function () { pending.delete(writing); };
  writing.then(done, done);
  return writing;
}

function cacheable(url) {
  return url.pathname === "/p/" || url.pathname.indexOf("/p/s/") === 0;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method === "POST" && request.mode === "navigate" && url.pathname === SIGN_OUT) {
    // Forgotten whether or not the sign-out reaches the server (offline, the person still
    // meant to leave nothing behind; the browser then says it is offline); its answer shows
    // once the copies are gone.
    var forgot = signedOut();
    event.respondWith(fetch(request).then(function (response) {
      return forgot.then(function () { return response; });
    }, function (error) {
      return forgot.then(function () { throw error; });
    }));
    return;
  }
  if (request.method !== "GET") return;
  if (ASSETS.indexOf(url.pathname) >= 0) {
    event.respondWith(caches.match(request).then(function (hit) {
      return hit || fetch(request);
    }));
    return;
  }
  if (request.mode !== "navigate") return;
  // Every page: the network first (the page must be current). The home and survey pages of a
  // participant without a PIN are kept, and shown when offline.
  var since = era;
  event.respondWith(fetch(request).then(function (response) {
    return pageSeen(response, since).then(function (mayKeep) {
      if (mayKeep && cacheable(url) && response.ok && !response.redirected) {
        keep(request, response.clone());
      }
      return response;
    });
  }, function (error) {
    if (!cacheable(url)) throw error;
    return forgetting.then(function (done) {
      if (!done) return undefined; // the last forgetting failed: no copy is trusted
      return caches.match(request).then(function (hit) {
        return hit || caches.match("/p/");
      });
    });
  }));
});

importScripts({{ outbox_json|safe }});
var outbox = self.ParticipantOutbox;

function flush() {
  return outbox("readonly", function (store) { return store.getAll(); }).then(function (items) {
    return Promise.all((items || []).map(function (item) {
      return fetch(item.url, {
        method: "POST", credentials: "same-origin", body: item.body,
        headers: { "Content-Type": "application/json", "X-CSRFToken": item.csrf },
      }).then(function (response) {
        // Sent, or refused for good (400: invalid; 409: already sent or the window closed):
        // out of the outbox. Without a session (401, 403, 404: the browser closed on a PIN
        // phone, or someone else signed in) the answers wait for the participant's link.
        if (response.ok || response.status === 400 || response.status === 409) {
          var reply = response.ok ? Promise.resolve({})
            : response.json().catch(function () { return {}; });
          return reply.then(function (body) {
            return outbox("readwrite", function (store) { store.delete(item.url); }).then(function () {
              return self.clients.matchAll().then(function (clients) {
                clients.forEach(function (client) {
                  client.postMessage({
                    type: response.ok ? "sent" : "refused", code: (body && body.code) || "",
                    url: item.url,
                  });
                });
              });
            });
          });
        }
      });
    }));
  });
}

self.addEventListener("sync", function (event) {
  if (event.tag === "outbox") event.waitUntil(flush());
});
