"use strict";
/* Nothing of the last person's pages stays on this phone: the service worker's copies (the
   answers kept while typing go by drafts.js, on this page too). (Answers waiting to be sent
   stay in the outbox, unreadable here.) */
(function () {
  // The service worker forgets the kept pages itself, including a copy it is still writing
  // (a page opened just before signing out); this page does it too, for a worker not in control.
  if (navigator.serviceWorker && navigator.serviceWorker.controller) {
    navigator.serviceWorker.controller.postMessage({ type: "signed-out" });
  }
  if (window.caches) {
    caches.keys().then(function (keys) {
      keys.forEach(function (key) {
        if (key.indexOf("participant-") !== 0) return;
        caches.open(key).then(function (cache) {
          cache.keys().then(function (requests) {
            requests.forEach(function (request) {
              if (new URL(request.url).pathname.indexOf("/static/") !== 0) cache.delete(request);
            });
          });
        });
      });
    });
  }
})();
