/*
 * The survey page, enhanced: one screen at a time, branching applied live (logic.js), every
 * step saved to this phone (localStorage) and to the server (a draft, with where the
 * participant is), a review before sending, and sending that survives a lost connection
 * (an IndexedDB outbox sent on load, on "online" and by the service worker's Background Sync).
 * Without this script the form still works: every question on one page, checked by the server.
 */
(function () {
  "use strict";
  var form = document.getElementById("survey");
  var dataNode = document.getElementById("survey-data");
  if (!form || !dataNode || !window.SurveyLogic) return;
  var logic = window.SurveyLogic;
  var data = JSON.parse(dataNode.textContent);
  var S = data.strings;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var clientId = data.draft.client_id;
  var screens = Array.prototype.slice.call(form.querySelectorAll(".screen"));
  var review = document.getElementById("review");
  var back = document.getElementById("back");
  var next = document.getElementById("next");
  var send = document.getElementById("send");
  var statusBox = document.getElementById("status");
  var sending = false; // true from "Send" until the server answers
  var sends = 0; // how many times "Send" was pressed
  var crisis = document.getElementById("crisis");
  var progressText = document.getElementById("progress-text");
  var progress = document.getElementById("progress");
  var current = 0; // index into screens; screens.length = the review
  var returnToReview = false;

  function fmt(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }
  function questions(root) {
    return Array.prototype.slice.call((root || form).querySelectorAll(".q"));
  }

  // --- Answers ------------------------------------------------------------------------
  function readQuestion(q) {
    var kind = q.dataset.kind, name = q.dataset.variable;
    if (kind === "multiple") {
      var chosen = [];
      q.querySelectorAll("input:checked").forEach(function (box) { chosen.push(box.value); });
      return chosen.length ? chosen : null;
    }
    if (kind === "yesno" || kind === "single") {
      var picked = q.querySelector("input:checked");
      return picked ? picked.value : null;
    }
    var field = q.querySelector("[name='" + name + "']");
    if (kind === "slider" && field.dataset.unset === "1") return null;
    var text = field.value.trim();
    // Nothing but characters that show nothing is no answer (validation.INVISIBLE).
    if (text.replace(/[\u200B\u200C\u200D\u2060\uFEFF]/g, "").trim() === "") return null;
    if (kind === "integer" || kind === "decimal" || kind === "slider") {
      // Persian and Arabic digits are read as 0-9 and a decimal comma as a point (the server
      // reads them the same way); what is not a number stays text, for check() to explain.
      var typed;
      try { typed = logic.typedNumber(text, kind === "decimal"); } catch (e) { return text; }
      var number = Number(typed);
      // The server's NUMERIC (logic.py): "5." and ".5" are numbers there, so here too.
      return isFinite(number) && /^-?(?:\d+\.?\d*|\.\d+)$/.test(typed) ? number : text;
    }
    return text;
  }
  function evaluate() {
    // What the server does (validation.answers_clean), step for step: every answer typed,
    // then one pass over the items in their order, calculated fields among them: a hidden
    // question's answer is dropped (later branching never sees it), a calculated field is
    // computed where it stands. A question's branching that uses a calculated field before
    // it, or a question after it, sees what the server sees (found by review: calculated
    // fields were computed last, so a question shown by one was sent without its answer).
    var all = {}, shown = {}, byName = {}, calcs = {};
    questions().forEach(function (q) {
      byName[q.dataset.variable] = q;
      var value = readQuestion(q);
      if (value !== null) all[q.dataset.variable] = value;
    });
    data.calcs.forEach(function (calc) { calcs[calc.variable] = calc; });
    // A page kept from before the order was sent (a phone's offline copy): the questions,
    // then the calculated fields, as that page computed them.
    var order = data.order || Object.keys(byName).concat(Object.keys(calcs));
    order.forEach(function (name) {
      var calc = calcs[name], q = byName[name];
      if (calc) {
        if (logic.shows(calc.branching, all)) {
          var value = logic.calculate(calc.formula, all);
          if (value !== null) all[name] = value;
        }
      } else if (q) {
        shown[name] = logic.shows(q.dataset.branching || "", all);
        if (!shown[name]) delete all[name];
      }
    });
    return { values: all, shown: shown };
  }
  function answers() { return evaluate().values; }
  function fill(values) {
    questions().forEach(function (q) {
      var name = q.dataset.variable, value = values[name], kind = q.dataset.kind;
      if (value === undefined || value === null) return;
      if (kind === "multiple" || kind === "yesno" || kind === "single") {
        var set = [].concat(value).map(String);
        q.querySelectorAll("input").forEach(function (box) { box.checked = set.indexOf(box.value) >= 0; });
      } else {
        var field = q.querySelector("[name='" + name + "']");
        field.value = value;
        if (kind === "slider") { field.dataset.unset = "0"; sliderShow(q); }
      }
    });
  }

  // --- Sliders: a range input, unset until touched (so no answer is made up) ----------
  function sliderShow(q) {
    var field = q.querySelector("input[type=range]");
    var out = q.querySelector("output");
    var unset = field.dataset.unset === "1";
    q.classList.toggle("unset", unset);
    out.textContent = unset ? S.slider_unset : fmt(S.slider_value, { value: field.value });
    field.setAttribute("aria-valuetext", unset ? S.slider_unset : field.value);
  }
  questions().forEach(function (q) {
    if (q.dataset.kind !== "slider") return;
    var number = q.querySelector("input");
    var range = document.createElement("input");
    range.type = "range";
    range.id = number.id; range.name = number.name;
    range.min = q.dataset.min || "0"; range.max = q.dataset.max || "100"; range.step = "1";
    range.setAttribute("aria-describedby", number.getAttribute("aria-describedby"));
    range.dataset.unset = number.value === "" ? "1" : "0";
    range.value = number.value === "" ? String((Number(range.min) + Number(range.max)) / 2) : number.value;
    var out = document.createElement("output");
    out.setAttribute("for", range.id);
    out.setAttribute("aria-live", "polite");
    number.replaceWith(range);
    range.insertAdjacentElement("afterend", out);
    ["input", "change"].forEach(function (type) {
      range.addEventListener(type, function () { range.dataset.unset = "0"; sliderShow(q); });
    });
    // A tap on the track sets the value where it lands; arrow keys step from the middle.
    range.addEventListener("keydown", function (event) {
      if (range.dataset.unset === "1" && /Arrow|Home|End|Page/.test(event.key)) {
        range.dataset.unset = "0";
      }
    });
    sliderShow(q);
  });

  // --- Branching ----------------------------------------------------------------------
  function applyBranching() {
    var found = evaluate(), values = found.values;
    form.querySelectorAll("[data-branching]").forEach(function (node) {
      var name = node.classList.contains("q") ? node.dataset.variable : null;
      var shown = name !== null && name in found.shown ? found.shown[name]
        : logic.shows(node.dataset.branching || "", values);
      node.hidden = !shown;
      node.querySelectorAll("input, textarea, select").forEach(function (input) { input.disabled = !shown; });
    });
    if (crisis) {
      var danger = questions().some(function (q) {
        return q.dataset.alert && !q.hidden && logic.shows(q.dataset.alert, values);
      });
      if (danger && crisis.hidden) crisis.hidden = false;
    }
  }
  function visibleScreens() {
    return screens.filter(function (screen) {
      return questions(screen).some(function (q) { return !q.hidden; }) ||
        (!screen.querySelector(".q") && !!screen.querySelector(".intro:not([hidden])"));
    });
  }

  // --- Showing one screen -------------------------------------------------------------
  function show(index, focus) {
    var visible = visibleScreens();
    current = Math.max(0, Math.min(index, visible.length));
    screens.forEach(function (screen) { screen.hidden = true; });
    var atReview = current === visible.length;
    review.hidden = !atReview;
    if (atReview) buildReview(visible); else visible[current].hidden = false;
    back.hidden = current === 0;
    next.hidden = atReview;
    send.hidden = !atReview;
    progress.hidden = false; progressText.hidden = false;
    progressText.textContent = atReview ? S.review :
      fmt(S.progress, { n: current + 1, total: visible.length });
    progress.firstElementChild.style.width = Math.round(100 * current / Math.max(1, visible.length)) + "%";
    if (focus !== false) {
      var target = atReview ? review : visible[current].querySelector("h2, legend, label");
      if (target) {
        if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
        target.focus();
      }
    }
  }
  function position() {
    // The review has a position of its own, so that reopening the survey comes back to it.
    var visible = visibleScreens();
    return current < visible.length ? visible[current].dataset.first : data.review_position;
  }

  function labelOf(q) {
    var legend = q.querySelector("legend, .label");
    var copy = legend.cloneNode(true);
    var req = copy.querySelector(".req");
    if (req) req.remove();
    return copy.textContent.trim();
  }
  function answerText(q) {
    var value = readQuestion(q);
    if (value === null) return S.unanswered;
    if (q.dataset.kind === "multiple" || q.dataset.kind === "single" || q.dataset.kind === "yesno") {
      var labels = [];
      q.querySelectorAll("input:checked").forEach(function (box) {
        labels.push(box.parentNode.textContent.trim());
      });
      return labels.join(", ");
    }
    return String(value);
  }
  function buildReview(visible) {
    var list = document.getElementById("review-list");
    list.textContent = "";
    visible.forEach(function (screen, index) {
      questions(screen).forEach(function (q) {
        if (q.hidden) return;
        var dt = document.createElement("dt");
        dt.textContent = labelOf(q);
        var dd = document.createElement("dd");
        var span = document.createElement("span");
        span.textContent = answerText(q);
        var change = document.createElement("button");
        change.type = "button";
        change.className = "link";
        change.textContent = S.change;
        change.setAttribute("aria-label", S.change + ": " + labelOf(q));
        change.addEventListener("click", function () { returnToReview = true; show(index); });
        dd.appendChild(span); dd.appendChild(document.createTextNode(" ")); dd.appendChild(change);
        list.appendChild(dt); list.appendChild(dd);
      });
    });
  }

  // --- Checking a screen (the server checks everything again) ------------------------
  function setError(q, message) {
    var box = q.querySelector(".error");
    box.textContent = message || "";
    box.hidden = !message;
    q.querySelectorAll("input, textarea").forEach(function (input) {
      if (message) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    });
    var fieldset = q.querySelector("fieldset");
    if (fieldset && !fieldset.getAttribute("aria-describedby")) fieldset.setAttribute("aria-describedby", box.id);
  }
  function check(q) {
    if (q.hidden) return "";
    var value = readQuestion(q), kind = q.dataset.kind;
    if (value === null) return q.hasAttribute("data-required") ? S.required : "";
    if (kind === "integer" || kind === "decimal" || kind === "slider") {
      if (typeof value !== "number") {
        try { logic.typedNumber(value, kind === "decimal"); } catch (e) {
          if (e instanceof logic.TypedNumberError) return S[e.problem];
        }
        return kind === "decimal" ? S.number : S.whole;
      }
      if (kind !== "decimal" && Math.floor(value) !== value) return S.whole;
      var low = q.dataset.min, high = q.dataset.max;
      if ((low !== "" && value < Number(low)) || (high !== "" && value > Number(high))) {
        return fmt(S.range, { min: low || "…", max: high || "…" });
      }
    }
    return "";
  }
  function checkScreen(screen) {
    var first = null;
    questions(screen).forEach(function (q) {
      var message = check(q);
      setError(q, message);
      if (message && !first) first = q;
    });
    if (first) {
      statusBox.textContent = S.problems;
      var input = first.querySelector("input:not([disabled]), textarea");
      if (input) input.focus();
      return false;
    }
    return true;
  }
  function showServerErrors(errors) {
    var visible = visibleScreens(), target = null, elsewhere = [];
    Object.keys(errors).forEach(function (name) {
      var q = document.getElementById("q-" + name);
      if (!q) { elsewhere.push(name); return; }
      setError(q, errors[name][0]);
      var index = visible.indexOf(q.closest(".screen"));
      if (index >= 0 && (target === null || index < target)) target = index;
    });
    if (target !== null) {
      show(target, false);
      statusBox.textContent = S.problems;
      var input = visible[target].querySelector("[aria-invalid=true]");
      if (input) input.focus();
    } else if (elsewhere.length) {
      // Nothing on this page to point at (found by review: the status stayed "Sending…"):
      // a question this page does not have is one of a version published since it opened;
      // anything else is the server's own word.
      var question = elsewhere.filter(function (name) {
        return name !== "non_field" && name !== "client_id";
      });
      statusBox.textContent = question.length ? S.changed : errors[elsewhere[0]][0];
    }
  }

  // --- Saving: this phone first, then the server ---------------------------------------
  function saveLocal() {
    try {
      localStorage.setItem(data.key, JSON.stringify({
        client_id: clientId, answers: answers(), position: position(), saved_at: new Date().toISOString(),
      }));
    } catch (e) { /* private mode or full: the server draft still works */ }
  }
  function draftAnswers() {
    // The answers of shown questions (calculated fields are the server's to compute).
    var all = answers(), kept = {};
    questions().forEach(function (q) {
      var name = q.dataset.variable;
      if (all[name] !== undefined) kept[name] = all[name];
    });
    return kept;
  }
  function saveServer() {
    var sendsBefore = sends;
    // A draft reply that lands after "Send" was pressed (even once the send has been
    // answered) must not hide the send's status with "Saved".
    function quiet() { return sending || sends !== sendsBefore; }
    return fetch(data.api + "draft/", {
      method: "PUT", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ client_id: clientId, answers: draftAnswers(), position: position() }),
    }).then(function (response) {
      if (response.ok) { if (!quiet()) statusBox.textContent = S.saved; return null; }
      return response.json().then(function (body) { return body; }, function () { return null; });
    }, function () {
      if (!quiet()) statusBox.textContent = S.saved_here;
      return null;
    });
  }

  // --- The outbox (shared with the service worker) ------------------------------------
  function outbox(mode, work) {
    return window.ParticipantOutbox ? window.ParticipantOutbox(mode, work)
      : Promise.reject(new Error("no outbox"));
  }
  function submitUrl() { return data.api + "submit/"; }
  var leaving = false;
  function finished() {
    // Both the page and the service worker may see the send succeed: leave once.
    if (leaving) return;
    leaving = true;
    try { localStorage.removeItem(data.key); } catch (e) { /* ignore */ }
    window.location.assign(data.done);
  }
  function post(body) {
    return fetch(submitUrl(), {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    });
  }
  function queue(body) {
    statusBox.textContent = S.queued;
    send.disabled = false;
    return outbox("readwrite", function (store) {
      store.put({ url: submitUrl(), body: body, csrf: csrf, queued_at: new Date().toISOString() });
    }).then(function () {
      if (navigator.serviceWorker && navigator.serviceWorker.ready) {
        navigator.serviceWorker.ready.then(function (registration) {
          if (registration.sync) registration.sync.register("outbox").catch(function () {});
        });
      }
    }).catch(function () { /* no IndexedDB: localStorage still holds the answers */ });
  }
  function handle(response, body) {
    sending = false;
    if (response.status === 200 || response.status === 201) {
      return outbox("readwrite", function (store) { store.delete(submitUrl()); })
        .catch(function () {}).then(finished);
    }
    return response.json().catch(function () { return {}; }).then(function (reply) {
      send.disabled = false;
      if (response.status === 400 && reply.errors) { showServerErrors(reply.errors); return; }
      if (response.status === 409 && reply.code === "already_submitted") { finished(); return; }
      if (response.status === 409 && reply.code === "sent_before_changes") {
        // Sent before, with other answers (the first reply was lost): the first answers
        // stand, and the done page says the changes were not saved.
        return outbox("readwrite", function (store) { store.delete(submitUrl()); })
          .catch(function () {}).then(finished);
      }
      if ([401, 403, 404].indexOf(response.status) >= 0) {
        // No session (a PIN phone's browser was closed): keep the answers for the link.
        return queue(body).then(function () { statusBox.textContent = S.reopen; });
      }
      statusBox.textContent = reply.detail || S.problems;
      if (response.status >= 500 || response.status === 429) return queue(body);
      return outbox("readwrite", function (store) { store.delete(submitUrl()); }).catch(function () {});
    });
  }
  function submit() {
    sending = true;
    sends += 1;
    var body = JSON.stringify({ client_id: clientId, answers: draftAnswers() });
    send.disabled = true;
    statusBox.textContent = S.sending;
    saveLocal();
    return post(body).then(function (response) { return handle(response, body); },
      function () { return queue(body); });
  }
  function flush() {
    return outbox("readonly", function (store) { return store.get(submitUrl()); }).then(function (item) {
      if (!item) return;
      statusBox.textContent = S.sending;
      return post(item.body).then(function (response) { return handle(response, item.body); },
        function () { statusBox.textContent = S.queued; });
    }).catch(function () {});
  }

  // --- Wiring -------------------------------------------------------------------------
  form.setAttribute("novalidate", "");
  form.addEventListener("input", function () {
    applyBranching();
    saveLocal();
  });
  form.addEventListener("change", function (event) {
    var q = event.target.closest(".q");
    if (q && !q.querySelector(".error").hidden) setError(q, check(q));
  });
  next.addEventListener("click", function () {
    var visible = visibleScreens();
    if (!checkScreen(visible[current])) return;
    statusBox.textContent = "";
    var target = returnToReview ? visibleScreens().length : current + 1;
    returnToReview = false;
    applyBranching();
    show(target);
    saveLocal();
    saveServer().then(function (reply) { if (reply && reply.errors) showServerErrors(reply.errors); });
  });
  back.addEventListener("click", function () { show(current - 1); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (current < visibleScreens().length) { next.click(); return; }
    submit();
  });
  window.addEventListener("online", flush);
  if (navigator.serviceWorker) {
    navigator.serviceWorker.register("/p/sw.js", { scope: "/p/" }).catch(function () {});
    navigator.serviceWorker.addEventListener("message", function (event) {
      if (!event.data || event.data.url !== submitUrl()) return;
      // The service worker sent the answers that waited on the phone: gone, already there,
      // or there before the participant's last changes (the done page says so).
      var code = event.data.code;
      if (event.data.type === "sent" || code === "already_submitted"
          || code === "sent_before_changes") finished();
    });
  }

  // Resume: the newer of this phone's copy and the server's draft.
  var local = null;
  try { local = JSON.parse(localStorage.getItem(data.key) || "null"); } catch (e) { local = null; }
  var start = data.draft;
  if (local && (!start.saved_at || local.saved_at > start.saved_at)) start = local;
  clientId = start.client_id || clientId;
  form.querySelector("input[name=client_id]").value = clientId;
  fill(start.answers || {});
  applyBranching();
  var visible = visibleScreens(), resumeAt = 0;
  if (start.position === data.review_position) {
    // Left at the review: back to it, unless an answer is missing or wrong there (the draft
    // came from another version, or branching now shows another question): then that screen.
    resumeAt = visible.length;
    for (var i = 0; i < visible.length; i++) {
      if (questions(visible[i]).some(function (q) { return check(q) !== ""; })) { resumeAt = i; break; }
    }
  }
  visible.forEach(function (screen, index) {
    if (start.position && screen.dataset.first === start.position) resumeAt = index;
  });
  next.hidden = false;
  show(resumeAt, false);
  flush();
})();
