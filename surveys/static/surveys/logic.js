/*
 * Branching logic and calculations for survey pages: the browser twin of surveys/logic.py.
 * Same language, same semantics (see the docstring there); both are tested against
 * surveys/static/surveys/logic-vectors.json. No dependencies; works as a plain <script>
 * (window.SurveyLogic) and under node (module.exports).
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.SurveyLogic = factory();
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // ASCII digits and spaces only, as in surveys/logic.py (JavaScript's \s is Unicode-wide).
  var NUMERIC = /^[ \t\n\r\f\v]*(-?(?:[0-9]+\.?[0-9]*|\.[0-9]+))[ \t\n\r\f\v]*$/;
  // Persian (U+06F0-06F9) and Arabic-Indic (U+0660-0669) digits and the Arabic decimal
  // separator (U+066B), as surveys/logic.py's EASTERN_DIGITS.
  var EASTERN = /[\u06F0-\u06F9\u0660-\u0669\u066B]/g;
  var FUNCTIONS = { round: [1, 2], sum: [1, null], if: [3, 3] };
  var COMPARISONS = { "=": 1, "<>": 1, "!=": 1, "<": 1, "<=": 1, ">": 1, ">=": 1 };
  var BLANK = "";
  var TOKEN = new RegExp(
    "([ \\t\\n\\r\\f\\v]+)" + // 1 space
      "|([0-9]+\\.?[0-9]*|\\.[0-9]+)" + // 2 number
      "|('[^']*'|\"[^\"]*\")" + // 3 string
      "|(\\[([A-Za-z][A-Za-z0-9_]*)(?:\\(([A-Za-z0-9_.\\-]+)\\))?\\])" + // 4 field, 5 name, 6 code
      "|(<=|>=|<>|!=|=|<|>|\\+|-|\\*|/|\\^)" + // 7 operator
      "|(\\()" + // 8
      "|(\\))" + // 9
      "|(,)" + // 10
      "|([A-Za-z_][A-Za-z0-9_]*)", // 11 word
    "y"
  );

  function LogicError(message, position) {
    this.name = "LogicError";
    this.message = message + " (at character " + (position + 1) + ")";
    this.reason = message;
    this.position = position;
  }
  LogicError.prototype = Object.create(Error.prototype);

  function tokenize(text) {
    var tokens = [];
    var position = 0;
    while (position < text.length) {
      TOKEN.lastIndex = position;
      var m = TOKEN.exec(text);
      if (m === null) {
        var ch = text.charAt(position);
        if (ch === "'" || ch === '"') throw new LogicError("a quoted text is not closed", position);
        if (ch === "[") {
          throw new LogicError(
            "a field reference is malformed: write [name] or [name(code)]",
            position
          );
        }
        throw new LogicError("unexpected character " + pyRepr(ch), position);
      }
      if (m[2] !== undefined) tokens.push({ kind: "num", value: parseFloat(m[2]), position: position });
      else if (m[3] !== undefined) tokens.push({ kind: "str", value: m[3].slice(1, -1), position: position });
      else if (m[4] !== undefined) {
        tokens.push({
          kind: "field",
          value: [m[5].toLowerCase(), m[6] === undefined ? null : m[6]],
          position: position,
        });
      } else if (m[7] !== undefined) tokens.push({ kind: "op", value: m[7], position: position });
      else if (m[8] !== undefined) tokens.push({ kind: "lparen", value: "(", position: position });
      else if (m[9] !== undefined) tokens.push({ kind: "rparen", value: ")", position: position });
      else if (m[10] !== undefined) tokens.push({ kind: "comma", value: ",", position: position });
      else if (m[11] !== undefined) tokens.push({ kind: "word", value: m[11].toLowerCase(), position: position });
      position = TOKEN.lastIndex;
    }
    tokens.push({ kind: "end", value: null, position: text.length });
    return tokens;
  }

  function pyRepr(s) {
    return s.indexOf("'") >= 0 && s.indexOf('"') < 0 ? '"' + s + '"' : "'" + s + "'";
  }

  function Parser(text) {
    this.tokens = tokenize(text);
    this.index = 0;
  }
  Parser.prototype.current = function () {
    return this.tokens[this.index];
  };
  Parser.prototype.advance = function () {
    return this.tokens[this.index++];
  };
  Parser.prototype.isWord = function (word) {
    var t = this.current();
    return t.kind === "word" && t.value === word;
  };
  Parser.prototype.isOp = function (ops) {
    var t = this.current();
    return t.kind === "op" && ops.indexOf(t.value) >= 0;
  };
  Parser.prototype.unexpected = function () {
    var t = this.current();
    if (t.kind === "end") return new LogicError("the expression ends too early", t.position);
    var shown = { field: "field reference", num: "number", str: "quoted text" }[t.kind];
    return new LogicError("unexpected " + (shown || pyRepr(String(t.value))), t.position);
  };
  Parser.prototype.parse = function () {
    if (this.current().kind === "end") throw new LogicError("the expression is empty", 0);
    var node = this.parseOr();
    if (this.current().kind !== "end") throw this.unexpected();
    return node;
  };
  Parser.prototype.parseOr = function () {
    var node = this.parseAnd();
    while (this.isWord("or")) {
      this.advance();
      node = ["or", node, this.parseAnd()];
    }
    return node;
  };
  Parser.prototype.parseAnd = function () {
    var node = this.parseNot();
    while (this.isWord("and")) {
      this.advance();
      node = ["and", node, this.parseNot()];
    }
    return node;
  };
  Parser.prototype.parseNot = function () {
    if (this.isWord("not")) {
      this.advance();
      return ["not", this.parseNot()];
    }
    return this.parseComparison();
  };
  Parser.prototype.parseComparison = function () {
    var node = this.parseAdditive();
    var t = this.current();
    if (t.kind === "op" && COMPARISONS[t.value]) {
      var op = this.advance().value;
      node = ["cmp", op === "!=" ? "<>" : op, node, this.parseAdditive()];
      t = this.current();
      if (t.kind === "op" && COMPARISONS[t.value]) {
        throw new LogicError("comparisons cannot be chained; join them with and/or", t.position);
      }
    }
    return node;
  };
  Parser.prototype.parseAdditive = function () {
    var node = this.parseMultiplicative();
    while (this.isOp(["+", "-"])) {
      var op = this.advance().value;
      node = ["arith", op, node, this.parseMultiplicative()];
    }
    return node;
  };
  Parser.prototype.parseMultiplicative = function () {
    var node = this.parseUnary();
    while (this.isOp(["*", "/"])) {
      var op = this.advance().value;
      node = ["arith", op, node, this.parseUnary()];
    }
    return node;
  };
  Parser.prototype.parseUnary = function () {
    if (this.isOp(["-", "+"])) {
      var op = this.advance().value;
      var operand = this.parseUnary();
      return [op === "-" ? "neg" : "pos", operand];
    }
    return this.parsePower();
  };
  Parser.prototype.parsePower = function () {
    var node = this.parsePrimary();
    if (this.isOp(["^"])) {
      this.advance();
      node = ["arith", "^", node, this.parseUnary()];
    }
    return node;
  };
  Parser.prototype.parsePrimary = function () {
    var t = this.current();
    if (t.kind === "num") {
      this.advance();
      return ["num", t.value];
    }
    if (t.kind === "str") {
      this.advance();
      return ["str", t.value];
    }
    if (t.kind === "field") {
      this.advance();
      return ["field", t.value[0], t.value[1], t.position];
    }
    if (t.kind === "lparen") {
      this.advance();
      var node = this.parseOr();
      if (this.current().kind !== "rparen") {
        throw new LogicError("a parenthesis is not closed", this.current().position);
      }
      this.advance();
      return node;
    }
    if (t.kind === "word") {
      if (t.value === "and" || t.value === "or" || t.value === "not") throw this.unexpected();
      if (!Object.prototype.hasOwnProperty.call(FUNCTIONS, t.value)) {
        throw new LogicError("unknown function or word " + pyRepr(t.value), t.position);
      }
      return this.parseCall();
    }
    throw this.unexpected();
  };
  Parser.prototype.parseCall = function () {
    var nameToken = this.advance();
    var name = nameToken.value;
    if (this.current().kind !== "lparen") {
      throw new LogicError(name + " needs its arguments in parentheses", this.current().position);
    }
    this.advance();
    var args = [];
    if (this.current().kind !== "rparen") {
      args.push(this.parseOr());
      while (this.current().kind === "comma") {
        this.advance();
        args.push(this.parseOr());
      }
    }
    if (this.current().kind !== "rparen") {
      throw new LogicError("the arguments of " + name + " are not closed", this.current().position);
    }
    this.advance();
    var low = FUNCTIONS[name][0];
    var high = FUNCTIONS[name][1];
    if (args.length < low || (high !== null && args.length > high)) {
      var expected =
        low === high ? String(low) : high === null ? low + " or more" : low + " to " + high;
      throw new LogicError(
        name + " takes " + expected + " arguments, not " + args.length,
        nameToken.position
      );
    }
    return ["call", name, args];
  };

  var cache = {};
  function parse(text) {
    if (!Object.prototype.hasOwnProperty.call(cache, text)) cache[text] = new Parser(text).parse();
    return cache[text];
  }

  // A typed number whose separators cannot be read without guessing (TypedNumberError in
  // surveys/logic.py): problem "whole_comma" or "separators".
  function TypedNumberError(problem) {
    this.name = "TypedNumberError";
    this.message = problem;
    this.problem = problem;
  }
  TypedNumberError.prototype = Object.create(Error.prototype);

  // A number as a participant typed it, in the ASCII that NUMERIC reads (typed_number in
  // surveys/logic.py): Persian and Arabic-Indic digits as 0-9, the Arabic decimal separator as
  // ".", and in a decimal item one comma with no dot as the decimal point (3,5 is 3.5).
  // Thousands separators are never read: a comma in a whole number, or two separators in a
  // decimal, throw a TypedNumberError.
  function typedNumber(text, decimal) {
    var ascii = text.replace(EASTERN, function (ch) {
      if (ch === "\u066B") return ".";
      var code = ch.charCodeAt(0);
      return String(code - (code >= 0x06f0 ? 0x06f0 : 0x0660));
    });
    if (!decimal) {
      if (ascii.indexOf(",") >= 0 || ascii.indexOf("\u066C") >= 0) {
        throw new TypedNumberError("whole_comma");
      }
      // 2.000: two thousand where a point groups thousands, 2 elsewhere (logic.py's
      // GROUPED_BY_POINTS).
      if (/^\s*[-+]?\d{1,3}(?:\.\d{3})+\s*$/.test(ascii)) throw new TypedNumberError("whole_point");
      return ascii;
    }
    if (ascii.indexOf("\u066C") >= 0) throw new TypedNumberError("separators");
    var commas = ascii.split(",").length - 1;
    if (commas === 0) return ascii;
    if (commas === 1 && ascii.indexOf(".") < 0) return ascii.replace(",", ".");
    throw new TypedNumberError("separators");
  }

  // --- Evaluation ------------------------------------------------------------------------
  function isNumber(v) {
    return typeof v === "number";
  }
  function isNumeric(v) {
    return !isNaN(toNumber(v));
  }
  // NaN for blank, text and numbers too large for a double (Infinity), as in Python.
  function toNumber(v) {
    var n = NaN;
    if (typeof v === "boolean") return v ? 1 : 0;
    if (isNumber(v)) n = v;
    else if (typeof v === "string") {
      var m = NUMERIC.exec(v);
      if (m) n = parseFloat(m[1]);
    }
    return isFinite(n) ? n : NaN;
  }
  function toText(v) {
    if (typeof v === "boolean") return v ? "1" : "0";
    if (isNumber(v)) return String(v);
    if (v === null || v === undefined) return BLANK;
    return String(v);
  }
  function truthy(v) {
    if (typeof v === "boolean") return v;
    if (isNumber(v)) return isFinite(v) && v !== 0;
    if (typeof v === "string") {
      if (NUMERIC.test(v)) {
        var n = toNumber(v);
        return !isNaN(n) && n !== 0;
      }
      return v !== "";
    }
    return false;
  }
  function finiteOrBlank(x) {
    return isFinite(x) ? x : BLANK;
  }
  function roundHalfAway(value, places) {
    var factor = Math.pow(10, Math.trunc(places));
    var r = Math.floor(Math.abs(value) * factor + 0.5) / factor;
    return value < 0 || (value === 0 && 1 / value < 0) ? -r : r;
  }
  function arith(op, left, right) {
    var a = toNumber(left);
    var b = toNumber(right);
    if (isNaN(a) || isNaN(b)) return BLANK;
    if (op === "+") return finiteOrBlank(a + b);
    if (op === "-") return finiteOrBlank(a - b);
    if (op === "*") return finiteOrBlank(a * b);
    if (op === "/") return b === 0 ? BLANK : finiteOrBlank(a / b);
    var p = Math.pow(a, b);
    return isNaN(p) ? BLANK : finiteOrBlank(p);
  }
  function compare(op, left, right) {
    var a, b;
    if (isNumeric(left) && isNumeric(right)) {
      a = toNumber(left);
      b = toNumber(right);
    } else if (op === "=" || op === "<>") {
      a = toText(left);
      b = toText(right);
    } else {
      return false;
    }
    switch (op) {
      case "=":
        return a === b;
      case "<>":
        return a !== b;
      case "<":
        return a < b;
      case "<=":
        return a <= b;
      case ">":
        return a > b;
      default:
        return a >= b;
    }
  }
  function field(answers, name, code) {
    var value = Object.prototype.hasOwnProperty.call(answers, name) ? answers[name] : null;
    if (code !== null) {
      if (!Array.isArray(value)) return 0;
      for (var i = 0; i < value.length; i++) if (toText(value[i]) === code) return 1;
      return 0;
    }
    if (value === null || value === undefined || typeof value === "object") return BLANK;
    return value;
  }
  function evalNode(node, answers) {
    switch (node[0]) {
      case "num":
      case "str":
        return node[1];
      case "field":
        return field(answers, node[1], node[2]);
      case "or":
        return truthy(evalNode(node[1], answers)) || truthy(evalNode(node[2], answers));
      case "and":
        return truthy(evalNode(node[1], answers)) && truthy(evalNode(node[2], answers));
      case "not":
        return !truthy(evalNode(node[1], answers));
      case "cmp":
        return compare(node[1], evalNode(node[2], answers), evalNode(node[3], answers));
      case "arith":
        return arith(node[1], evalNode(node[2], answers), evalNode(node[3], answers));
      case "neg":
      case "pos": {
        var n = toNumber(evalNode(node[1], answers));
        if (isNaN(n)) return BLANK;
        return node[0] === "neg" ? -n : n;
      }
      case "call": {
        var name = node[1];
        var args = node[2];
        if (name === "if") {
          return evalNode(truthy(evalNode(args[0], answers)) ? args[1] : args[2], answers);
        }
        var values = args.map(function (a) {
          return evalNode(a, answers);
        });
        if (name === "sum") {
          var numbers = values.filter(isNumeric).map(toNumber);
          if (!numbers.length) return BLANK;
          return finiteOrBlank(fsum(numbers));
        }
        var number = toNumber(values[0]);
        var places = values.length > 1 ? toNumber(values[1]) : 0;
        if (isNaN(number) || isNaN(places)) return BLANK;
        return finiteOrBlank(roundHalfAway(number, places));
      }
      default:
        throw new Error("unknown node " + node[0]);
    }
  }
  // Python's math.fsum (Shewchuk's algorithm with CPython's final rounding), so that sums agree
  // with the server to the last bit. Infinite input gives blank upstream.
  function fsum(values) {
    var partials = [];
    var i, j, k, x, y, t, hi, lo, yr;
    for (i = 0; i < values.length; i++) {
      x = values[i];
      j = 0;
      for (k = 0; k < partials.length; k++) {
        y = partials[k];
        if (Math.abs(x) < Math.abs(y)) {
          t = x;
          x = y;
          y = t;
        }
        hi = x + y;
        lo = y - (hi - x);
        if (lo !== 0) partials[j++] = lo;
        x = hi;
      }
      partials.length = j;
      partials.push(x);
    }
    var n = partials.length;
    hi = 0;
    if (n > 0) {
      hi = partials[--n];
      lo = 0;
      while (n > 0) {
        x = hi;
        y = partials[--n];
        hi = x + y;
        yr = hi - x;
        lo = y - yr;
        if (lo !== 0) break;
      }
      if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
        y = lo * 2;
        x = hi + y;
        yr = x - hi;
        if (y === yr) hi = x;
      }
    }
    return hi;
  }

  function evaluate(text, answers) {
    return evalNode(parse(text), answers || {});
  }
  function shows(text, answers) {
    if (!text || !text.trim()) return true;
    return truthy(evaluate(text, answers));
  }
  function calculate(text, answers) {
    var value = evaluate(text, answers);
    if (typeof value === "boolean") return value ? 1 : 0;
    var n = toNumber(value);
    // Blank as on the server (logic.py CALCULATED_LIMIT): a value this large is a formula
    // gone wrong, not a measure.
    return isFinite(n) && Math.abs(n) < 1e15 ? n : null;
  }

  return {
    LogicError: LogicError,
    parse: parse,
    evaluate: evaluate,
    shows: shows,
    calculate: calculate,
    truthy: truthy,
    typedNumber: typedNumber,
    TypedNumberError: TypedNumberError,
  };
});
