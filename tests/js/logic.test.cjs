// The browser's logic evaluator against the shared vectors (run by `node --test tests/js/`).
// tests/surveys/test_logic.py runs this file, so `make test` covers both languages.
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const fs = require("node:fs");

const root = path.resolve(__dirname, "..", "..");
const SurveyLogic = require(path.join(root, "surveys/static/surveys/logic.js"));
const { vectors, typed_numbers: typedNumbers } = JSON.parse(
  fs.readFileSync(path.join(root, "surveys/static/surveys/logic-vectors.json"), "utf8")
);

function close(actual, expected) {
  if (expected === null || actual === null) return actual === expected;
  return Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected));
}

for (const [index, v] of vectors.entries()) {
  test(`vector ${index}: ${v.mode} ${JSON.stringify(v.expr)}`, () => {
    const run = () =>
      v.mode === "shows"
        ? SurveyLogic.shows(v.expr, v.answers)
        : SurveyLogic.calculate(v.expr, v.answers);
    if ("error_at" in v) {
      // The empty-expression case of "shows" is "always shown", not an error.
      assert.throws(run, (err) => err instanceof SurveyLogic.LogicError && err.position === v.error_at);
      return;
    }
    const actual = run();
    if (v.mode === "shows") assert.equal(actual, v.expect);
    else assert.ok(close(actual, v.expect), `got ${actual}, expected ${v.expect}`);
  });
}


for (const v of typedNumbers) {
  test(`typed number ${JSON.stringify(v.typed)}${v.decimal ? " (decimal)" : ""}`, () => {
    const run = () => SurveyLogic.typedNumber(v.typed, Boolean(v.decimal));
    if ("problem" in v) {
      assert.throws(run, (err) => err instanceof SurveyLogic.TypedNumberError && err.problem === v.problem);
      return;
    }
    assert.equal(run(), v.expect);
  });
}
