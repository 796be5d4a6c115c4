package dev.tinybertedge;

import java.text.Normalizer;
import java.util.Locale;

/**
 * {@link UnicodeTables} from this JVM: the character classes of Hugging Face's BERT normalizer and pre-tokenizer (the
 * Rust {@code tokenizers} crate behind {@code BertTokenizerFast}) computed with {@link Character#getType(int)} and
 * {@link Normalizer}, corrected where JDK 17's Unicode data disagrees with the reference.
 *
 * <p>The fast tokenizer does not use Python's {@code unicodedata}: it asks the {@code unicode_categories} crate (whose
 * tables are Unicode 9-era), Rust's {@code char::is_whitespace} (the White_Space property) and Rust's
 * {@code char::to_lowercase} (a recent Unicode). This JDK's {@link Character#getType(int)} is Unicode 13 (JDK 17).
 * Where those sources disagree for a code point, the tables below say what the fast tokenizer does; each table was
 * produced by comparing all 1,112,064 scalar values against {@code tokenizers} 0.22 (see the module README, "Unicode
 * versions") and the sweep in {@code UnicodeSweep} re-checks them.
 *
 * <p>Another JDK (or Android's ICU) has another Unicode version, and these corrections then no longer fit: on a device
 * use the bundle's tables ({@link UnicodeTables#read}).
 */
final class JdkUnicodeTables extends UnicodeTables {

    /** Rust's {@code char::is_whitespace}: the White_Space property, stable since Unicode 6.3. */
    @Override
    public boolean isWhitespace(int cp) {
        switch (cp) {
            case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0: case 0x1680:
            case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
                return true;
            default:
                return cp >= 0x2000 && cp <= 0x200A;
        }
    }

    /**
     * The fast tokenizer's "control" test used by clean_text: categories Cc, Cf, Co and Cs, but not Cn (unassigned
     * code points are kept, unlike Python's slow BertTokenizer), and never tab, newline or carriage return.
     */
    @Override
    public boolean isControl(int cp) {
        if (cp == '\t' || cp == '\n' || cp == '\r') {
            return false;
        }
        if (inRanges(cp, CONTROL_EXTRA)) {
            return true;
        }
        if (inRanges(cp, CONTROL_MISSING)) {
            return false;
        }
        switch (Character.getType(cp)) {
            case Character.CONTROL:
            case Character.FORMAT:
            case Character.PRIVATE_USE:
            case Character.SURROGATE:
                return true;
            default:
                return false;
        }
    }

    /** BERT punctuation: any ASCII punctuation (including $+<=>^`|~, which Unicode files as symbols) or P*. */
    @Override
    public boolean isPunctuation(int cp) {
        if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
            return true;
        }
        if (inRanges(cp, PUNCTUATION_EXTRA)) {
            return true;
        }
        if (inRanges(cp, PUNCTUATION_MISSING)) {
            return false;
        }
        switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION:
            case Character.DASH_PUNCTUATION:
            case Character.START_PUNCTUATION:
            case Character.END_PUNCTUATION:
            case Character.INITIAL_QUOTE_PUNCTUATION:
            case Character.FINAL_QUOTE_PUNCTUATION:
            case Character.OTHER_PUNCTUATION:
                return true;
            default:
                return false;
        }
    }

    /** Category Mn, the marks that accent stripping removes after NFD. */
    @Override
    public boolean isMark(int cp) {
        if (inRanges(cp, MARK_EXTRA)) {
            return true;
        }
        if (inRanges(cp, MARK_MISSING)) {
            return false;
        }
        return Character.getType(cp) == Character.NON_SPACING_MARK;
    }

    /**
     * The CJK blocks that get spaces around them. These are the Rust crate's ranges: its extension-F range starts at
     * U+2B920, not U+2B820 as in Python's BertTokenizer, so U+2B820..U+2B91F are not split.
     */
    @Override
    public boolean isChineseChar(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF)
                || (cp >= 0x3400 && cp <= 0x4DBF)
                || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F)
                || (cp >= 0x2B740 && cp <= 0x2B81F)
                || (cp >= 0x2B920 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF)
                || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }

    /**
     * NFD as the fast tokenizer's {@code unicode-normalization-alignments} crate does it. Its tables predate Unicode
     * 13, so it leaves U+11938 (DIVES AKURU VOWEL SIGN O, decomposable since Unicode 13) whole; that character has
     * combining class 0, so the text is decomposed piecewise around it.
     */
    @Override
    public String nfd(String text) {
        int at = text.indexOf(NFD_KEPT);
        if (at < 0) {
            return Normalizer.normalize(text, Normalizer.Form.NFD);
        }
        StringBuilder out = new StringBuilder(text.length() + 16);
        int start = 0;
        while (at >= 0) {
            out.append(Normalizer.normalize(text.substring(start, at), Normalizer.Form.NFD)).append(NFD_KEPT);
            start = at + NFD_KEPT.length();
            at = text.indexOf(NFD_KEPT, start);
        }
        return out.append(Normalizer.normalize(text.substring(start), Normalizer.Form.NFD)).toString();
    }

    private static final String NFD_KEPT = new String(Character.toChars(0x11938));

    /**
     * Rust's {@code char::to_lowercase} of one code point, appended to {@code out}: the full mapping (U+0130 becomes
     * "i" + U+0307), and no context, so a word-final capital sigma becomes U+03C3 (Python's and Java's
     * String-level lower-casing would give the final form U+03C2).
     */
    @Override
    public void appendLowerCase(int cp, StringBuilder out) {
        int lo = 0;
        int hi = LOWER_EXTRA.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            int key = LOWER_EXTRA[mid][0];
            if (cp == key) {
                out.appendCodePoint(LOWER_EXTRA[mid][1]);
                return;
            }
            if (cp < key) {
                hi = mid - 1;
            } else {
                lo = mid + 1;
            }
        }
        if (cp < 0x80) {
            out.append((char) (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
            return;
        }
        // A one-code-point string has no casing context, so toLowerCase applies only the unconditional mappings.
        out.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT));
    }

    @Override
    public String describe() {
        return "this JVM's Unicode data (Java " + System.getProperty("java.specification.version")
                + ") with built-in corrections for JDK 17";
    }

    private static boolean inRanges(int cp, int[][] ranges) {
        return findRange(cp, ranges) >= 0;
    }

    // Where the fast tokenizer's tables differ from JDK 17's Unicode 13 data, as sorted inclusive [first, last]
    // ranges (LOWER_EXTRA: sorted [code point, its lower case] pairs). *_MISSING are mostly characters that Unicode
    // 10-13 assigned or re-categorised and the crate's older tables do not know (so unassigned-looking: kept, not
    // punctuation, not a mark); LOWER_EXTRA are case pairs from Unicode 14-16 that Rust knows and JDK 17 does not.
    // Generated by the test-tree tool GenerateUnicodeTables from a sweep file; do not edit by hand.
    // GENERATED-TABLES-START
    private static final int[][] CONTROL_EXTRA = {};
    private static final int[][] CONTROL_MISSING = {
            {0x8E2, 0x8E2}, {0x110CD, 0x110CD}, {0x13430, 0x13438}
    };
    private static final int[][] PUNCTUATION_EXTRA = {
            {0x166D, 0x166D}, {0x111C9, 0x111C9}
    };
    private static final int[][] PUNCTUATION_MISSING = {
            {0x9FD, 0x9FD}, {0xA76, 0xA76}, {0xC77, 0xC77}, {0xC84, 0xC84}, {0x2E43, 0x2E4F}, {0x2E52, 0x2E52},
            {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59}, {0x1144B, 0x1144F}, {0x1145A, 0x1145B}, {0x1145D, 0x1145D},
            {0x11660, 0x1166C}, {0x1183B, 0x1183B}, {0x11944, 0x11946}, {0x119E2, 0x119E2}, {0x11A3F, 0x11A46},
            {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2}, {0x11C41, 0x11C45}, {0x11C70, 0x11C71}, {0x11EF7, 0x11EF8},
            {0x11FFF, 0x11FFF}, {0x16E97, 0x16E9A}, {0x16FE2, 0x16FE2}, {0x1E95E, 0x1E95F}
    };
    private static final int[][] MARK_EXTRA = {};
    private static final int[][] MARK_MISSING = {
            {0x7FD, 0x7FD}, {0x8D3, 0x8E1}, {0x9FE, 0x9FE}, {0xAFA, 0xAFF}, {0xB55, 0xB55}, {0xC04, 0xC04},
            {0xD00, 0xD00}, {0xD3B, 0xD3C}, {0xD81, 0xD81}, {0xEBA, 0xEBA}, {0x1885, 0x1886}, {0x1ABF, 0x1AC0},
            {0x1DF6, 0x1DF9}, {0x1DFB, 0x1DFB}, {0xA82C, 0xA82C}, {0xA8C5, 0xA8C5}, {0xA8FF, 0xA8FF},
            {0xA9BD, 0xA9BD}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10F46, 0x10F50}, {0x111C9, 0x111C9},
            {0x111CF, 0x111CF}, {0x1123E, 0x1123E}, {0x1133B, 0x1133B}, {0x11438, 0x1143F}, {0x11442, 0x11444},
            {0x11446, 0x11446}, {0x1145E, 0x1145E}, {0x1182F, 0x11837}, {0x11839, 0x1183A}, {0x1193B, 0x1193C},
            {0x1193E, 0x1193E}, {0x11943, 0x11943}, {0x119D4, 0x119D7}, {0x119DA, 0x119DB}, {0x119E0, 0x119E0},
            {0x11A01, 0x11A0A}, {0x11A33, 0x11A38}, {0x11A3B, 0x11A3E}, {0x11A47, 0x11A47}, {0x11A51, 0x11A56},
            {0x11A59, 0x11A5B}, {0x11A8A, 0x11A96}, {0x11A98, 0x11A99}, {0x11C30, 0x11C36}, {0x11C38, 0x11C3D},
            {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0}, {0x11CB2, 0x11CB3}, {0x11CB5, 0x11CB6},
            {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D}, {0x11D3F, 0x11D45}, {0x11D47, 0x11D47},
            {0x11D90, 0x11D91}, {0x11D95, 0x11D95}, {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x16F4F, 0x16F4F},
            {0x16FE4, 0x16FE4}, {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024},
            {0x1E026, 0x1E02A}, {0x1E130, 0x1E136}, {0x1E2EC, 0x1E2EF}, {0x1E944, 0x1E94A}
    };
    private static final int[][] LOWER_EXTRA = {
            {0x1C89, 0x1C8A}, {0x2C2F, 0x2C5F}, {0xA7C0, 0xA7C1}, {0xA7CB, 0x264}, {0xA7CC, 0xA7CD},
            {0xA7CE, 0xA7CF}, {0xA7D0, 0xA7D1}, {0xA7D2, 0xA7D3}, {0xA7D4, 0xA7D5}, {0xA7D6, 0xA7D7},
            {0xA7D8, 0xA7D9}, {0xA7DA, 0xA7DB}, {0xA7DC, 0x19B}, {0x10570, 0x10597}, {0x10571, 0x10598},
            {0x10572, 0x10599}, {0x10573, 0x1059A}, {0x10574, 0x1059B}, {0x10575, 0x1059C}, {0x10576, 0x1059D},
            {0x10577, 0x1059E}, {0x10578, 0x1059F}, {0x10579, 0x105A0}, {0x1057A, 0x105A1}, {0x1057C, 0x105A3},
            {0x1057D, 0x105A4}, {0x1057E, 0x105A5}, {0x1057F, 0x105A6}, {0x10580, 0x105A7}, {0x10581, 0x105A8},
            {0x10582, 0x105A9}, {0x10583, 0x105AA}, {0x10584, 0x105AB}, {0x10585, 0x105AC}, {0x10586, 0x105AD},
            {0x10587, 0x105AE}, {0x10588, 0x105AF}, {0x10589, 0x105B0}, {0x1058A, 0x105B1}, {0x1058C, 0x105B3},
            {0x1058D, 0x105B4}, {0x1058E, 0x105B5}, {0x1058F, 0x105B6}, {0x10590, 0x105B7}, {0x10591, 0x105B8},
            {0x10592, 0x105B9}, {0x10594, 0x105BB}, {0x10595, 0x105BC}, {0x10D50, 0x10D70}, {0x10D51, 0x10D71},
            {0x10D52, 0x10D72}, {0x10D53, 0x10D73}, {0x10D54, 0x10D74}, {0x10D55, 0x10D75}, {0x10D56, 0x10D76},
            {0x10D57, 0x10D77}, {0x10D58, 0x10D78}, {0x10D59, 0x10D79}, {0x10D5A, 0x10D7A}, {0x10D5B, 0x10D7B},
            {0x10D5C, 0x10D7C}, {0x10D5D, 0x10D7D}, {0x10D5E, 0x10D7E}, {0x10D5F, 0x10D7F}, {0x10D60, 0x10D80},
            {0x10D61, 0x10D81}, {0x10D62, 0x10D82}, {0x10D63, 0x10D83}, {0x10D64, 0x10D84}, {0x10D65, 0x10D85},
            {0x16EA0, 0x16EBB}, {0x16EA1, 0x16EBC}, {0x16EA2, 0x16EBD}, {0x16EA3, 0x16EBE}, {0x16EA4, 0x16EBF},
            {0x16EA5, 0x16EC0}, {0x16EA6, 0x16EC1}, {0x16EA7, 0x16EC2}, {0x16EA8, 0x16EC3}, {0x16EA9, 0x16EC4},
            {0x16EAA, 0x16EC5}, {0x16EAB, 0x16EC6}, {0x16EAC, 0x16EC7}, {0x16EAD, 0x16EC8}, {0x16EAE, 0x16EC9},
            {0x16EAF, 0x16ECA}, {0x16EB0, 0x16ECB}, {0x16EB1, 0x16ECC}, {0x16EB2, 0x16ECD}, {0x16EB3, 0x16ECE},
            {0x16EB4, 0x16ECF}, {0x16EB5, 0x16ED0}, {0x16EB6, 0x16ED1}, {0x16EB7, 0x16ED2}, {0x16EB8, 0x16ED3}
    };
    // GENERATED-TABLES-END
}
