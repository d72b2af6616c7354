// Evaluate a batch of cases given as JSON on stdin: [{mode, expr, answers}], print results as JSON
// ({value} or {error_at}). Used by the Python property test that compares both evaluators.
const path = require("node:path");
const SurveyLogic = require(path.resolve(__dirname, "..", "..", "surveys/static/surveys/logic.js"));

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((c) => {
    try {
      const value =
        c.mode === "shows" ? SurveyLogic.shows(c.expr, c.answers) : SurveyLogic.calculate(c.expr, c.answers);
      return { value };
    } catch (err) {
      if (err instanceof SurveyLogic.LogicError) return { error_at: err.position };
      return { crash: String(err) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
