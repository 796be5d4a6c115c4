package dev.tinybertedge;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The character classes and mappings the BERT tokenizer needs: which code points are control characters,
 * whitespace, CJK ideographs, non-spacing marks and punctuation, plus canonical decomposition (NFD) and lower-casing.
 *
 * <p>Two sources, which the tests check against Hugging Face's fast tokenizer code point by code point:
 * <ul>
 *   <li>{@link #parse} / {@link #read}: the bundle's {@code unicode_tables.txt}, probed from the reference tokenizer
 *   when the bundle was packaged (docs/bundle_format.md, "Unicode tables"). This is what a device should use: an
 *   Android phone's {@code Character} and {@code Normalizer} follow the ICU of its OS release, so their Unicode
 *   version differs from one phone to the next.</li>
 *   <li>{@link #jdk()}: this JVM's {@link Character#getType(int)} and {@link java.text.Normalizer}, corrected by
 *   built-in tables for the code points where JDK 17 (Unicode 13) and the reference disagree. For a JVM without a
 *   bundle; exact on JDK 17 only.</li>
 * </ul>
 */
public abstract class UnicodeTables {
    /** Dropped by clean_text (besides U+0000 and U+FFFD, which are always dropped). Never tab, LF or CR. */
    public abstract boolean isControl(int cp);

    /** Mapped to a space by clean_text, and split on by the pre-tokenizer. */
    public abstract boolean isWhitespace(int cp);

    /** Padded with spaces when tokenize_chinese_chars is on. */
    public abstract boolean isChineseChar(int cp);

    /** Dropped after canonical decomposition when strip_accents is on. */
    public abstract boolean isMark(int cp);

    /** Isolated as a word of its own by the pre-tokenizer. */
    public abstract boolean isPunctuation(int cp);

    /** Canonical decomposition (NFD) of a whole text. */
    public abstract String nfd(String text);

    /** Appends the lower case of one code point, without context (a final capital sigma becomes U+03C3). */
    public abstract void appendLowerCase(int cp, StringBuilder out);

    /** What {@link #describe()} shows: where the tables came from. */
    public abstract String describe();

    private static final UnicodeTables JDK = new JdkUnicodeTables();

    /** This JVM's Unicode data plus built-in corrections (exact on JDK 17). */
    public static UnicodeTables jdk() {
        return JDK;
    }

    /** Read a bundle's {@code unicode_tables.txt} (strict UTF-8, in fact ASCII). */
    public static UnicodeTables read(Path path) throws IOException {
        return parse(Utf8.readFile(path), path.toString());
    }

    static final String HEADER = "# tinybert-edge unicode tables v1";
    private static final String[] RANGE_KINDS = {"control", "whitespace", "cjk", "mark", "punct"};

    /**
     * Parse the text of {@code unicode_tables.txt}. Strict: an unknown header version, an unknown entry kind, a
     * malformed number, an inverted or overlapping range, or a code point mapped twice is an error naming the line.
     */
    public static UnicodeTables parse(String text, String source) {
        String[] lines = text.split("\n", -1);
        if (lines.length == 0 || !(lines[0].equals(HEADER) || lines[0].startsWith(HEADER + " "))) {
            throw new IllegalArgumentException(source + ": the first line is not '" + HEADER
                    + " ...'; this reader knows version 1 of the Unicode tables: re-package the bundle with this SDK");
        }
        Map<String, List<int[]>> ranges = new HashMap<>();
        for (String kind : RANGE_KINDS) {
            ranges.put(kind, new ArrayList<>());
        }
        List<int[]> ccc = new ArrayList<>();
        Map<Integer, int[]> nfd = new HashMap<>();
        Map<Integer, int[]> lower = new HashMap<>();
        for (int n = 0; n < lines.length; n++) {
            String line = lines[n];
            if (line.isEmpty() && n == lines.length - 1) {
                break;  // the newline that ends the last line
            }
            if (line.startsWith("#")) {
                continue;
            }
            String where = source + ": line " + (n + 1) + " ('" + line + "')";
            String[] f = line.split(" ", -1);
            String kind = f[0];
            if (ranges.containsKey(kind)) {
                expectFields(f, 3, 3, where);
                ranges.get(kind).add(range(hex(f[1], where), hex(f[2], where), where));
            } else if (kind.equals("ccc")) {
                expectFields(f, 4, 4, where);
                int[] r = range(hex(f[1], where), hex(f[2], where), where);
                int value = decimal(f[3], where);
                ccc.add(new int[] {r[0], r[1], value});
            } else if (kind.equals("nfd") || kind.equals("lower")) {
                expectFields(f, 3, Integer.MAX_VALUE, where);
                int cp = hex(f[1], where);
                int[] mapped = new int[f.length - 2];
                for (int i = 2; i < f.length; i++) {
                    mapped[i - 2] = hex(f[i], where);
                }
                Map<Integer, int[]> target = kind.equals("nfd") ? nfd : lower;
                if (target.put(cp, mapped) != null) {
                    throw new IllegalArgumentException(where + ": U+" + f[1] + " is mapped twice; the file is corrupt:"
                            + " re-package the bundle");
                }
            } else {
                throw new IllegalArgumentException(where + ": unknown entry kind '" + kind
                        + "'; allowed: control, whitespace, cjk, mark, punct, ccc, nfd, lower");
            }
        }
        return new FileUnicodeTables(
                sorted(ranges.get("control"), source, "control"),
                sorted(ranges.get("whitespace"), source, "whitespace"),
                sorted(ranges.get("cjk"), source, "cjk"),
                sorted(ranges.get("mark"), source, "mark"),
                sorted(ranges.get("punct"), source, "punct"),
                sorted(ccc, source, "ccc"), nfd, lower, source + " (" + lines[0].substring(2) + ")");
    }

    private static void expectFields(String[] f, int min, int max, String where) {
        if (f.length < min || f.length > max) {
            throw new IllegalArgumentException(where + ": has " + f.length + " fields; the file is corrupt:"
                    + " re-package the bundle");
        }
    }

    private static int hex(String field, String where) {
        if (field.isEmpty() || field.length() > 6 || !field.chars().allMatch(c -> (c >= '0' && c <= '9')
                || (c >= 'A' && c <= 'F'))) {
            throw new IllegalArgumentException(where + ": '" + field + "' is not an upper-case hex code point");
        }
        int cp = Integer.parseInt(field, 16);
        if (cp > Character.MAX_CODE_POINT) {
            throw new IllegalArgumentException(where + ": U+" + field + " is beyond U+10FFFF");
        }
        return cp;
    }

    private static int decimal(String field, String where) {
        if (field.isEmpty() || field.length() > 3 || !field.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new IllegalArgumentException(where + ": '" + field + "' is not a combining class (0-255)");
        }
        int value = Integer.parseInt(field);
        if (value > 255) {
            throw new IllegalArgumentException(where + ": combining class " + value + " is beyond 255");
        }
        return value;
    }

    private static int[] range(int lo, int hi, String where) {
        if (hi < lo) {
            throw new IllegalArgumentException(where + ": the range ends before it starts");
        }
        return new int[] {lo, hi};
    }

    private static int[][] sorted(List<int[]> ranges, String source, String kind) {
        int[][] out = ranges.toArray(new int[0][]);
        Arrays.sort(out, (a, b) -> Integer.compare(a[0], b[0]));
        for (int i = 1; i < out.length; i++) {
            if (out[i][0] <= out[i - 1][1]) {
                throw new IllegalArgumentException(source + ": the " + kind + " ranges starting at U+"
                        + Integer.toHexString(out[i - 1][0]).toUpperCase() + " and U+"
                        + Integer.toHexString(out[i][0]).toUpperCase() + " overlap; re-package the bundle");
            }
        }
        return out;
    }

    /** Index of the range holding cp in sorted, disjoint, inclusive [first, last, ...] ranges, or -1. */
    static int findRange(int cp, int[][] ranges) {
        int lo = 0;
        int hi = ranges.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (cp < ranges[mid][0]) {
                hi = mid - 1;
            } else if (cp > ranges[mid][1]) {
                lo = mid + 1;
            } else {
                return mid;
            }
        }
        return -1;
    }
}
