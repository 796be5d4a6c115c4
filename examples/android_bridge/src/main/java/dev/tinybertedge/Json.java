package dev.tinybertedge;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small, strict JSON reader (RFC 8259), so the bundle reader needs nothing beyond java.base (a plain JVM has no
 * org.json). Objects become {@code Map<String, Object>} in file order, arrays {@code List<Object>}, strings
 * {@code String}, numbers {@code Long} (no fraction or exponent) or {@code Double}, booleans {@code Boolean} and
 * null {@link #NULL}.
 *
 * <p>Strict means: no comments, no trailing commas, no single quotes, no leading zeros, no NaN, no duplicate keys, no
 * raw control characters or lone surrogates in strings, nothing after the value, at most {@value #MAX_DEPTH} levels
 * of nesting. Anything else is a {@link JsonException} that gives the position.
 */
public final class Json {
    /** JSON null (a Map cannot tell a null value from a missing key). */
    public static final Object NULL = new Object() {
        @Override
        public String toString() {
            return "null";
        }
    };

    static final int MAX_DEPTH = 64;

    /** Malformed JSON, or a value of the wrong type where a reader expects another. */
    public static final class JsonException extends IOException {
        private static final long serialVersionUID = 1L;

        public JsonException(String message) {
            super(message);
        }
    }

    private final String text;
    private final String source;
    private int pos;

    private Json(String text, String source) {
        this.text = text;
        this.source = source;
    }

    /** Parse one JSON value that makes up the whole text; {@code source} names the text in error messages. */
    public static Object parse(String text, String source) throws JsonException {
        Json parser = new Json(text, source);
        parser.skipWhitespace();
        Object value = parser.value(0);
        parser.skipWhitespace();
        if (parser.pos != text.length()) {
            throw parser.error("unexpected content after the JSON value");
        }
        return value;
    }

    private Object value(int depth) throws JsonException {
        if (depth > MAX_DEPTH) {
            throw error("nesting deeper than " + MAX_DEPTH + " levels");
        }
        if (pos >= text.length()) {
            throw error("unexpected end of input, expected a value");
        }
        char c = text.charAt(pos);
        switch (c) {
            case '{':
                return object(depth);
            case '[':
                return array(depth);
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", NULL);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw error("unexpected character '" + printable(c) + "', expected a value");
        }
    }

    private Map<String, Object> object(int depth) throws JsonException {
        pos++;  // {
        Map<String, Object> map = new LinkedHashMap<>();
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            return map;
        }
        while (true) {
            skipWhitespace();
            if (peek() != '"') {
                throw error("expected a string key");
            }
            int keyAt = pos;
            String key = string();
            skipWhitespace();
            expect(':');
            skipWhitespace();
            Object value = value(depth + 1);
            if (map.containsKey(key)) {
                pos = keyAt;
                throw error("duplicate key \"" + key + "\"");
            }
            map.put(key, value);
            skipWhitespace();
            char c = peek();
            if (c == ',') {
                pos++;
            } else if (c == '}') {
                pos++;
                return map;
            } else {
                throw error("expected ',' or '}'");
            }
        }
    }

    private List<Object> array(int depth) throws JsonException {
        pos++;  // [
        List<Object> list = new ArrayList<>();
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            return list;
        }
        while (true) {
            skipWhitespace();
            list.add(value(depth + 1));
            skipWhitespace();
            char c = peek();
            if (c == ',') {
                pos++;
            } else if (c == ']') {
                pos++;
                return list;
            } else {
                throw error("expected ',' or ']'");
            }
        }
    }

    private String string() throws JsonException {
        pos++;  // opening quote
        StringBuilder out = new StringBuilder();
        while (true) {
            if (pos >= text.length()) {
                throw error("unterminated string");
            }
            char c = text.charAt(pos++);
            if (c == '"') {
                break;
            }
            if (c < 0x20) {
                pos--;
                throw error("raw control character U+" + hex4(c) + " in a string; it must be escaped");
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            if (pos >= text.length()) {
                throw error("unterminated escape");
            }
            char e = text.charAt(pos++);
            switch (e) {
                case '"': out.append('"'); break;
                case '\\': out.append('\\'); break;
                case '/': out.append('/'); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case 't': out.append('\t'); break;
                case 'u': out.append(unicodeEscape()); break;
                default:
                    pos--;
                    throw error("invalid escape '\\" + printable(e) + "'");
            }
        }
        String s = out.toString();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw error("string holds a lone surrogate U+" + hex4(c) + ", which is not Unicode text");
            }
        }
        return s;
    }

    private char unicodeEscape() throws JsonException {
        if (pos + 4 > text.length()) {
            throw error("truncated \\u escape");
        }
        int value = 0;
        for (int i = 0; i < 4; i++) {
            char h = text.charAt(pos + i);
            int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (digit < 0) {
                throw error("invalid \\u escape");
            }
            value = value * 16 + digit;
        }
        pos += 4;
        return (char) value;
    }

    private Object number() throws JsonException {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        if (peek() == '0') {
            pos++;
            if (isDigit(peek())) {
                throw error("leading zero in a number");
            }
        } else if (isDigit(peek())) {
            while (isDigit(peek())) {
                pos++;
            }
        } else {
            throw error("expected a digit");
        }
        boolean integral = true;
        if (peek() == '.') {
            integral = false;
            pos++;
            if (!isDigit(peek())) {
                throw error("expected a digit after '.'");
            }
            while (isDigit(peek())) {
                pos++;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            integral = false;
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!isDigit(peek())) {
                throw error("expected a digit in the exponent");
            }
            while (isDigit(peek())) {
                pos++;
            }
        }
        String literal = text.substring(start, pos);
        if (integral) {
            try {
                return Long.parseLong(literal);
            } catch (NumberFormatException exc) {
                pos = start;
                throw error("integer " + literal + " does not fit in 64 bits");
            }
        }
        double value = Double.parseDouble(literal);
        if (Double.isInfinite(value)) {
            pos = start;
            throw error("number " + literal + " is out of range");
        }
        return value;
    }

    private Object literal(String word, Object value) throws JsonException {
        if (!text.startsWith(word, pos)) {
            throw error("invalid literal, expected " + word);
        }
        pos += word.length();
        return value;
    }

    private void expect(char c) throws JsonException {
        if (peek() != c) {
            throw error("expected '" + c + "'");
        }
        pos++;
    }

    private char peek() {
        return pos < text.length() ? text.charAt(pos) : '\0';
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private void skipWhitespace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private JsonException error(String problem) {
        int line = 1;
        int column = 1;
        for (int i = 0; i < pos && i < text.length(); i++) {
            if (text.charAt(i) == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
        return new JsonException(source + ": invalid JSON at line " + line + ", column " + column + ": " + problem);
    }

    private static String hex4(char c) {
        return String.format("%04X", (int) c);
    }

    private static String printable(char c) {
        return c >= 0x20 && c < 0x7F ? String.valueOf(c) : "U+" + hex4(c);
    }

    // --- Typed access, for readers of a known document shape ------------------------------------------------------

    /** The object at {@code value}, or an error naming {@code where}. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> object(Object value, String where) throws JsonException {
        if (!(value instanceof Map)) {
            throw new JsonException(where + " is " + typeName(value) + ", expected an object");
        }
        return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    public static List<Object> array(Object value, String where) throws JsonException {
        if (!(value instanceof List)) {
            throw new JsonException(where + " is " + typeName(value) + ", expected an array");
        }
        return Collections.unmodifiableList((List<Object>) value);
    }

    public static Object field(Map<String, Object> object, String key, String where) throws JsonException {
        if (!object.containsKey(key)) {
            throw new JsonException(where + " has no \"" + key + "\"");
        }
        return object.get(key);
    }

    public static String string(Map<String, Object> object, String key, String where) throws JsonException {
        Object value = field(object, key, where);
        if (!(value instanceof String)) {
            throw new JsonException(where + "." + key + " is " + typeName(value) + ", expected a string");
        }
        return (String) value;
    }

    public static boolean bool(Map<String, Object> object, String key, String where) throws JsonException {
        Object value = field(object, key, where);
        if (!(value instanceof Boolean)) {
            throw new JsonException(where + "." + key + " is " + typeName(value) + ", expected true or false");
        }
        return (Boolean) value;
    }

    public static long integer(Map<String, Object> object, String key, String where) throws JsonException {
        return integer(field(object, key, where), where + "." + key);
    }

    public static long integer(Object value, String where) throws JsonException {
        if (!(value instanceof Long)) {
            throw new JsonException(where + " is " + typeName(value) + ", expected an integer");
        }
        return (Long) value;
    }

    public static double number(Object value, String where) throws JsonException {
        if (!(value instanceof Long) && !(value instanceof Double)) {
            throw new JsonException(where + " is " + typeName(value) + ", expected a number");
        }
        return ((Number) value).doubleValue();
    }

    /** An array of integers that fit in an int. */
    public static int[] intArray(Object value, String where) throws JsonException {
        List<Object> list = array(value, where);
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            long v = integer(list.get(i), where + "[" + i + "]");
            if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                throw new JsonException(where + "[" + i + "] = " + v + " does not fit in 32 bits");
            }
            out[i] = (int) v;
        }
        return out;
    }

    public static List<String> stringArray(Object value, String where) throws JsonException {
        List<Object> list = array(value, where);
        List<String> out = new ArrayList<>(list.size());
        for (int i = 0; i < list.size(); i++) {
            Object item = list.get(i);
            if (!(item instanceof String)) {
                throw new JsonException(where + "[" + i + "] is " + typeName(item) + ", expected a string");
            }
            out.add((String) item);
        }
        return out;
    }

    /** A string as a JSON literal, pure ASCII (non-ASCII and control characters as \\u escapes). */
    public static String quote(String s) {
        StringBuilder out = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c >= 0x20 && c < 0x7F) {
                out.append(c);
            } else {
                out.append("\\u").append(hex4(c).toLowerCase());
            }
        }
        return out.append('"').toString();
    }

    static String typeName(Object value) {
        if (value == null) {
            return "missing";
        }
        if (value == NULL) {
            return "null";
        }
        if (value instanceof Map) {
            return "an object";
        }
        if (value instanceof List) {
            return "an array";
        }
        if (value instanceof String) {
            return "a string";
        }
        if (value instanceof Boolean) {
            return "a boolean";
        }
        return "a number";
    }
}
