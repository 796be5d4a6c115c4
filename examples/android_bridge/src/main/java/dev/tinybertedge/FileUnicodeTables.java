package dev.tinybertedge;

import java.util.Arrays;
import java.util.Map;

/** {@link UnicodeTables} read from a bundle's {@code unicode_tables.txt}: no dependence on the device's Unicode data. */
final class FileUnicodeTables extends UnicodeTables {
    private static final int HANGUL_FIRST = 0xAC00;
    private static final int HANGUL_LAST = 0xD7A3;

    private final int[][] control;
    private final int[][] whitespace;
    private final int[][] cjk;
    private final int[][] mark;
    private final int[][] punct;
    private final int[][] ccc;
    private final Map<Integer, int[]> nfd;
    private final Map<Integer, int[]> lower;
    private final String description;
    /** Class bits of every BMP code point, looked up once here instead of a binary search per character. */
    private final byte[] bmpFlags = new byte[0x10000];
    private final byte[] bmpCcc = new byte[0x10000];

    private static final int CONTROL = 1;
    private static final int WHITESPACE = 2;
    private static final int CJK = 4;
    private static final int MARK = 8;
    private static final int PUNCT = 16;
    private static final int HAS_NFD = 32;
    private static final int HAS_LOWER = 64;

    FileUnicodeTables(int[][] control, int[][] whitespace, int[][] cjk, int[][] mark, int[][] punct, int[][] ccc,
                      Map<Integer, int[]> nfd, Map<Integer, int[]> lower, String description) {
        this.control = control;
        this.whitespace = whitespace;
        this.cjk = cjk;
        this.mark = mark;
        this.punct = punct;
        this.ccc = ccc;
        this.nfd = nfd;
        this.lower = lower;
        this.description = description;
        int[][][] classes = {control, whitespace, cjk, mark, punct};
        int[] bits = {CONTROL, WHITESPACE, CJK, MARK, PUNCT};
        for (int k = 0; k < classes.length; k++) {
            for (int[] range : classes[k]) {
                for (int cp = range[0]; cp <= Math.min(range[1], 0xFFFF); cp++) {
                    bmpFlags[cp] |= bits[k];
                }
            }
        }
        for (int[] range : ccc) {
            for (int cp = range[0]; cp <= Math.min(range[1], 0xFFFF); cp++) {
                bmpCcc[cp] = (byte) range[2];
            }
        }
        for (int cp : nfd.keySet()) {
            if (cp <= 0xFFFF) {
                bmpFlags[cp] |= HAS_NFD;
            }
        }
        for (int cp : lower.keySet()) {
            if (cp <= 0xFFFF) {
                bmpFlags[cp] |= HAS_LOWER;
            }
        }
    }

    private boolean has(int cp, int bit, int[][] ranges) {
        return cp <= 0xFFFF ? (bmpFlags[cp] & bit) != 0 : findRange(cp, ranges) >= 0;
    }

    @Override
    public boolean isControl(int cp) {
        return has(cp, CONTROL, control);
    }

    @Override
    public boolean isWhitespace(int cp) {
        return has(cp, WHITESPACE, whitespace);
    }

    @Override
    public boolean isChineseChar(int cp) {
        return has(cp, CJK, cjk);
    }

    @Override
    public boolean isMark(int cp) {
        return has(cp, MARK, mark);
    }

    @Override
    public boolean isPunctuation(int cp) {
        return has(cp, PUNCT, punct);
    }

    private int combiningClass(int cp) {
        if (cp <= 0xFFFF) {
            return bmpCcc[cp] & 0xFF;
        }
        int at = findRange(cp, ccc);
        return at < 0 ? 0 : ccc[at][2];
    }

    /** Decompose every code point (table, or Hangul arithmetic), then stably sort each run of non-zero classes. */
    @Override
    public String nfd(String text) {
        int[] out = new int[text.length() * 4 + 4];
        int n = 0;
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (n + 4 > out.length) {
                out = Arrays.copyOf(out, out.length * 2);
            }
            if (cp >= HANGUL_FIRST && cp <= HANGUL_LAST) {
                int s = cp - HANGUL_FIRST;
                out[n++] = 0x1100 + s / 588;
                out[n++] = 0x1161 + (s % 588) / 28;
                if (s % 28 != 0) {
                    out[n++] = 0x11A7 + s % 28;
                }
                continue;
            }
            int[] mapped = cp <= 0xFFFF && (bmpFlags[cp] & HAS_NFD) == 0 ? null : nfd.get(cp);
            if (mapped == null) {
                out[n++] = cp;
            } else {
                if (n + mapped.length > out.length) {
                    out = Arrays.copyOf(out, (n + mapped.length) * 2);
                }
                System.arraycopy(mapped, 0, out, n, mapped.length);
                n += mapped.length;
            }
        }
        reorder(out, n);
        StringBuilder result = new StringBuilder(n + 8);
        for (int i = 0; i < n; i++) {
            result.appendCodePoint(out[i]);
        }
        return result.toString();
    }

    /** Canonical ordering: insertion sort (stable) on the combining class within each run of non-zero classes. */
    private void reorder(int[] cps, int n) {
        int i = 0;
        while (i < n) {
            if (combiningClass(cps[i]) == 0) {
                i++;
                continue;
            }
            int runEnd = i;
            while (runEnd < n && combiningClass(cps[runEnd]) != 0) {
                runEnd++;
            }
            if (runEnd - i <= 16) {
                for (int j = i + 1; j < runEnd; j++) {
                    int cp = cps[j];
                    int cls = combiningClass(cp);
                    int k = j - 1;
                    while (k >= i && combiningClass(cps[k]) > cls) {
                        cps[k + 1] = cps[k];
                        k--;
                    }
                    cps[k + 1] = cp;
                }
            } else {
                // A long run (hostile input): sort (class, position) keys, O(n log n) and still stable.
                long[] keys = new long[runEnd - i];
                for (int j = i; j < runEnd; j++) {
                    keys[j - i] = ((long) combiningClass(cps[j]) << 32) | (j - i);
                }
                Arrays.sort(keys);
                int[] run = Arrays.copyOfRange(cps, i, runEnd);
                for (int j = 0; j < keys.length; j++) {
                    cps[i + j] = run[(int) keys[j]];
                }
            }
            i = runEnd;
        }
    }

    @Override
    public void appendLowerCase(int cp, StringBuilder out) {
        int[] mapped = cp <= 0xFFFF && (bmpFlags[cp] & HAS_LOWER) == 0 ? null : lower.get(cp);
        if (mapped == null) {
            out.appendCodePoint(cp);
        } else {
            for (int m : mapped) {
                out.appendCodePoint(m);
            }
        }
    }

    @Override
    public String describe() {
        return description;
    }
}
