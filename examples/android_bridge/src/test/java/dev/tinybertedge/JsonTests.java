package dev.tinybertedge;

import java.util.List;
import java.util.Map;

/** The strict JSON reader. */
final class JsonTests {
    private JsonTests() {}

    static void run() {
        Check.test("json: values and types", () -> {
            Map<String, Object> m = Json.object(Json.parse(
                    " {\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\n\\\"\"], \"b\": {}, \"c\": []}\n", "t"), "t");
            List<Object> a = Json.array(m.get("a"), "a");
            Check.equal(1L, a.get(0), "integer is Long");
            Check.equal(-2500.0, a.get(1), "fraction/exponent is Double");
            Check.equal(Boolean.TRUE, a.get(2), "true");
            Check.isTrue(a.get(4) == Json.NULL, "null is Json.NULL");
            Check.equal("x\u00e9\n\"", a.get(5), "escapes");
            Check.equal(List.of("a", "b", "c"), List.copyOf(m.keySet()), "key order kept");
            Check.equal("\uD83D\uDE00", Json.parse("\"\\ud83d\\ude00\"", "t"), "surrogate pair escape");
            Check.equal("\"\\u00e9\\\\\\u000a\"", Json.quote("\u00e9\\\n"), "quote");
        });
        String[][] bad = {
            {"[1,]", "expected a value"}, {"{\"a\":1,}", "expected a string key"}, {"01", "leading zero"},
            {"{\"a\":1,\"a\":2}", "duplicate key"}, {"\"\\ud83d\"", "lone surrogate"}, {"\"a\nb\"", "raw control"},
            {"1 2", "after the JSON value"}, {"NaN", "expected a value"}, {"'a'", "expected a value"},
            {"[1] // c", "after the JSON value"}, {"\"\\x\"", "invalid escape"}, {"\"\\u12g4\"", "invalid \\u"},
            {"\"\\u\u0661\u0662\u0663\u0664\"", "invalid \\u"}, {"99999999999999999999", "64 bits"},
            {"1e999", "out of range"}, {"-", "expected a digit"}, {"1.", "after '.'"}, {"", "end of input"},
            {"[".repeat(100) + "]".repeat(100), "nesting"}, {"\"abc", "unterminated"}, {"tru", "expected true"},
        };
        for (String[] c : bad) {
            Check.test("json: refuses " + Json.quote(c[0].length() > 20 ? c[0].substring(0, 20) + "..." : c[0]), () ->
                    Check.fails(Json.JsonException.class, c[1], () -> Json.parse(c[0], "t")));
        }
        Check.test("json: typed access names the field", () -> {
            Map<String, Object> m = Json.object(Json.parse("{\"n\": \"x\", \"i\": 1.5}", "doc"), "doc");
            Check.fails(Json.JsonException.class, "doc.n is a string, expected an integer", () ->
                    Json.integer(m, "n", "doc"));
            Check.fails(Json.JsonException.class, "doc.i is a number, expected an integer", () ->
                    Json.integer(m, "i", "doc"));
            Check.fails(Json.JsonException.class, "has no \"z\"", () -> Json.string(m, "z", "doc"));
        });
    }
}
