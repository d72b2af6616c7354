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
// another owner, it forgets the copies of any other; a page of a participant with a PIN (a shared
// phone, X-Offline-Copy: no) makes it forget them all, as does signing out (the worker sees
// the sign-out form go by and shows the signed-out page only once the copies are gone;
// signed_out.js also posts "signed-out", for a worker not in control of the page). Copies still
// being written are waited for and deleted too, and no page is served from the cache until
// that is done.
var OWNER = "X-Offline-Owner";
var pending = new Set();
var forgetting = Promise.resolve();
var lastOwner = null;

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
  var run = function () { return pagesForget(owner); };
  forgetting = Promise.all(Array.from(pending).concat([forgetting])).then(run, run);
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

// A page arrived from the server: whose it is decides which copies stay.
function pageSeen(response) {
  if (response.headers.get("X-Offline-Copy") === "no") {
    lastOwner = null;
    return forget(null);
  }
  var owner = response.headers.get(OWNER);
  if (owner && owner !== lastOwner) {
    lastOwner = owner;
    return forget(owner);
  }
  return forgetting;
}

function keep(request, copy) {
  var writing = caches.open(CACHE).then(function (cache) { return cache.put(request, copy); });
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
    // meant to leave nothing behind); its answer shows once the copies are gone.
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
  event.respondWith(fetch(request).then(function (response) {
    return pageSeen(response).then(function () {
      if (cacheable(url) && response.ok && !response.redirected && response.headers.get(OWNER) &&
          response.headers.get("X-Offline-Copy") !== "no") {
        keep(request, response.clone());
      }
      return response;
    });
  }, function (error) {
    if (!cacheable(url)) throw error;
    return forgetting.then(function () {
      return caches.match(request);
    }).then(function (hit) {
      return hit || caches.match("/p/");
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
