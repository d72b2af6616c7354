// Evaluate a batch of cases given as JSON on stdin: [{mode, expr, answers}] (mode "typed":
// {typed, decimal}), print results as JSON ({value}, {error_at} or {problem}). Used by the Python
// property tests that compare both evaluators.
const path = require("node:path");
const SurveyLogic = require(path.resolve(__dirname, "..", "..", "surveys/static/surveys/logic.js"));

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((c) => {
    try {
      if (c.mode === "typed") return { value: SurveyLogic.typedNumber(c.typed, c.decimal) };
      const value =
        c.mode === "shows" ? SurveyLogic.shows(c.expr, c.answers) : SurveyLogic.calculate(c.expr, c.answers);
      return { value };
    } catch (err) {
      if (err instanceof SurveyLogic.LogicError) return { error_at: err.position };
      if (err instanceof SurveyLogic.TypedNumberError) return { problem: err.problem };
      return { crash: String(err) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
