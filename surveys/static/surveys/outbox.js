/* The outbox: final answers sent while offline, kept in IndexedDB until they go. One copy for
   the survey page (survey.js) and the service worker (importScripts), which share the store. */
(function (root) {
  "use strict";
  root.ParticipantOutbox = function (mode, work) {
    return new Promise(function (resolve, reject) {
      if (!root.indexedDB) { reject(new Error("no IndexedDB")); return; }
      var open = root.indexedDB.open("participant-outbox", 1);
      open.onupgradeneeded = function () {
        open.result.createObjectStore("outbox", { keyPath: "url" });
      };
      open.onerror = function () { reject(open.error); };
      open.onsuccess = function () {
        var tx = open.result.transaction("outbox", mode);
        var request = work(tx.objectStore("outbox"));
        tx.oncomplete = function () { resolve(request && request.result); };
        tx.onerror = function () { reject(tx.error); };
      };
    });
  };
})(self);
