"use strict";
/* The answers kept on this phone while typing belong to the person signed in: any other
   person's go (someone who left without signing out, or whose sign-out page never ran this).
   Their own stay, for the survey page to resume from; on the signed-out page (data-own
   empty) nobody's stay. */
(function () {
  var script = document.currentScript;
  if (!script || script.dataset.own === undefined) return;
  var own = script.dataset.own;
  try {
    for (var i = localStorage.length - 1; i >= 0; i--) {
      var key = localStorage.key(i);
      if (key && key.indexOf("survey:") === 0 && !(own && key.indexOf(own) === 0)) {
        localStorage.removeItem(key);
      }
    }
  } catch (e) { /* storage unavailable */ }
})();
