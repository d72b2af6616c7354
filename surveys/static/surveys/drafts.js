"use strict";
/* The answers kept on this phone while typing belong to the person signed in: any other
   person's go (someone who left without signing out, or whose sign-out page never ran its
   script). Their own stay, for the survey page to resume from. */
(function () {
  var script = document.currentScript;
  var own = script && script.dataset.own;
  if (!own) return;
  try {
    for (var i = localStorage.length - 1; i >= 0; i--) {
      var key = localStorage.key(i);
      if (key && key.indexOf("survey:") === 0 && key.indexOf(own) !== 0) {
        localStorage.removeItem(key);
      }
    }
  } catch (e) { /* storage unavailable */ }
})();
