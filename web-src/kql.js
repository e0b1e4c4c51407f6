// KQL for CodeMirror 6: a stream tokenizer (no maintained KQL grammar exists for CodeMirror; the
// server's translator, duckdb-kql, is the parser of record) and the words completion offers.
import { StreamLanguage } from "@codemirror/language";

// Tabular operators (after a pipe) and the words that go with them.
export const OPERATORS = [
  "where", "summarize", "project", "project-away", "project-rename", "project-reorder", "extend",
  "order by", "sort by", "top", "take", "limit", "distinct", "count", "join", "union", "lookup",
  "mv-expand", "parse", "make-series", "render", "as", "sample", "getschema", "invoke", "serialize",
];
export const KEYWORDS = [
  "let", "by", "on", "kind", "with", "asc", "desc", "nulls", "first", "last", "and", "or", "not",
  "in", "!in", "has", "!has", "has_any", "has_all", "hasprefix", "hassuffix", "contains", "!contains",
  "startswith", "!startswith", "endswith", "!endswith", "matches", "regex", "between", "inner",
  "leftouter", "rightouter", "fullouter", "leftanti", "rightanti", "leftsemi", "rightsemi", "innerunique",
];
export const FUNCTIONS = [
  "count", "countif", "dcount", "dcountif", "sum", "sumif", "avg", "avgif", "min", "max", "arg_max",
  "arg_min", "make_set", "make_list", "take_any", "percentile", "stdev", "variance", "bin", "floor",
  "ago", "now", "datetime", "timespan", "startofday", "startofweek", "endofday", "format_datetime",
  "tostring", "toint", "tolong", "todouble", "todatetime", "tolower", "toupper", "strlen", "substring",
  "split", "strcat", "replace_string", "extract", "parse_json", "iff", "iif", "case", "coalesce",
  "isempty", "isnotempty", "isnull", "isnotnull", "array_length", "pack", "bag_pack", "round", "abs",
];
export const CHART_KINDS = ["timechart", "columnchart", "barchart", "piechart"];
const ATOMS = new Set(["true", "false", "null"]);
const WORDS = new Set([...OPERATORS.flatMap((o) => o.split(" ")), ...KEYWORDS, ...CHART_KINDS]);
const FUNCTION_SET = new Set(FUNCTIONS);

// Tables and columns are highlighted as such once the schema is known.
export function kqlLanguage(schema) {
  const tables = new Set(schema.map((t) => t.name));
  const columns = new Set(schema.flatMap((t) => t.columns.map((c) => c.name)));
  return StreamLanguage.define({
    name: "kql",
    startState: () => ({ inFence: false }),
    token(stream, state) {
      if (state.inFence) {
        if (stream.skipTo("```")) { stream.pos += 3; state.inFence = false; } else stream.skipToEnd();
        return "string";
      }
      if (stream.eatSpace()) return null;
      if (stream.match("//")) { stream.skipToEnd(); return "comment"; }
      if (stream.match("```")) { state.inFence = true; return "string"; }
      const verbatim = stream.match(/^@(?=['"])/);
      const quote = stream.peek();
      if (quote === "'" || quote === '"') {
        stream.next();
        let c;
        while ((c = stream.next()) != null) {
          if (c === "\\" && !verbatim) stream.next();
          else if (c === quote) break;
        }
        return "string";
      }
      if (stream.match(/^\d+(\.\d+)?(e[+-]?\d+)?(d|h|m|s|ms|microsecond|tick)?\b/i)) return "number";
      if (stream.match(/^[A-Za-z_][\w-]*/)) {
        let word = stream.current();
        // A dash belongs to a word only in operator names (mv-expand); `a-b` is a subtraction.
        if (word.includes("-") && !WORDS.has(word)) { stream.backUp(word.length - word.indexOf("-")); word = stream.current(); }
        if (ATOMS.has(word)) return "atom";
        if (tables.has(word)) return "typeName";
        if (WORDS.has(word)) return "keyword";
        if (columns.has(word)) return "propertyName";
        if (FUNCTION_SET.has(word) && stream.match(/^\s*\(/, false)) return "variableName.function";
        return "variableName";
      }
      if (stream.match(/^(==|!=|<=|>=|=~|!~|[|<>=+\-*/%!])/)) return "operator";
      stream.next();
      return "punctuation";
    },
    languageData: { commentTokens: { line: "//" } },
  });
}
