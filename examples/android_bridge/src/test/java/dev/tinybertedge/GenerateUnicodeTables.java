package dev.tinybertedge;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Developer tool: prints the override tables of {@link BertUnicode} (the code points where Hugging Face's fast
 * tokenizer and this JDK's Unicode data disagree), computed from a sweep file (see {@link UnicodeSweep}). Paste its
 * output between the GENERATED-TABLES markers of BertUnicode.java when the JDK or the tokenizers version changes.
 *
 * <p>Usage: {@code java dev.tinybertedge.GenerateUnicodeTables sweep.tsv}
 */
final class GenerateUnicodeTables {
    private GenerateUnicodeTables() {}

    public static void main(String[] args) throws IOException {
        List<Integer> controlExtra = new ArrayList<>();
        List<Integer> controlMissing = new ArrayList<>();
        List<Integer> punctExtra = new ArrayList<>();
        List<Integer> punctMissing = new ArrayList<>();
        List<Integer> markExtra = new ArrayList<>();
        List<Integer> markMissing = new ArrayList<>();
        List<String> lowerExtra = new ArrayList<>();
        try (BufferedReader reader = Files.newBufferedReader(Path.of(args[0]), StandardCharsets.UTF_8)) {
            String line;
            while ((line = reader.readLine()) != null) {
                String[] f = line.split("\t", -1);
                int cp = Integer.parseInt(f[0], 16);
                String hexCp = f[0];
                int type = Character.getType(cp);
                boolean special = cp == '\t' || cp == '\n' || cp == '\r';

                // NUL and U+FFFD are removed before the control test, on both sides.
                boolean removedFirst = cp == 0 || cp == 0xFFFD;
                boolean hfControl = !removedFirst && f[1].isEmpty();
                boolean jdkControl = !removedFirst && !special && (type == Character.CONTROL || type == Character.FORMAT
                        || type == Character.PRIVATE_USE || type == Character.SURROGATE);
                if (hfControl && !jdkControl) {
                    controlExtra.add(cp);
                } else if (!hfControl && jdkControl) {
                    controlMissing.add(cp);
                }

                boolean hfPunct = f[5].equals("61|" + hexCp + "|62");
                boolean jdkPunct = (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96)
                        || (cp >= 123 && cp <= 126) || (type >= Character.DASH_PUNCTUATION
                        && type <= Character.OTHER_PUNCTUATION) || type == Character.CONNECTOR_PUNCTUATION
                        || type == Character.INITIAL_QUOTE_PUNCTUATION || type == Character.FINAL_QUOTE_PUNCTUATION;
                if (hfPunct && !jdkPunct) {
                    punctExtra.add(cp);
                } else if (!hfPunct && jdkPunct) {
                    punctMissing.add(cp);
                }

                String c = new String(Character.toChars(cp));
                if (Normalizer.normalize(c, Normalizer.Form.NFD).equals(c)) {
                    boolean hfMark = f[3].equals("61");
                    boolean jdkMark = type == Character.NON_SPACING_MARK;
                    if (hfMark && !jdkMark) {
                        markExtra.add(cp);
                    } else if (!hfMark && jdkMark) {
                        markMissing.add(cp);
                    }
                }

                String jdkLower = UnicodeSweep.hex(c.toLowerCase(Locale.ROOT));
                if (!jdkLower.equals(f[4])) {
                    if (f[4].contains(" ")) {
                        throw new IOException("U+" + hexCp + " lower-cases to several code points (" + f[4]
                                + "); LOWER_EXTRA holds one code point per entry: extend it");
                    }
                    lowerExtra.add("{0x" + hexCp + ", 0x" + f[4] + "}");
                }
            }
        }
        print("CONTROL_EXTRA", controlExtra);
        print("CONTROL_MISSING", controlMissing);
        print("PUNCTUATION_EXTRA", punctExtra);
        print("PUNCTUATION_MISSING", punctMissing);
        print("MARK_EXTRA", markExtra);
        print("MARK_MISSING", markMissing);
        System.out.println("    private static final int[][] LOWER_EXTRA = {" + wrap(lowerExtra) + "};");
    }

    private static void print(String name, List<Integer> cps) {
        List<String> ranges = new ArrayList<>();
        for (int i = 0; i < cps.size(); ) {
            int j = i;
            while (j + 1 < cps.size() && cps.get(j + 1) == cps.get(j) + 1) {
                j++;
            }
            ranges.add(String.format("{0x%X, 0x%X}", cps.get(i), cps.get(j)));
            i = j + 1;
        }
        System.out.println("    private static final int[][] " + name + " = {" + wrap(ranges) + "};");
    }

    private static String wrap(List<String> items) {
        StringBuilder out = new StringBuilder();
        int col = 116;
        for (int i = 0; i < items.size(); i++) {
            String item = items.get(i) + (i + 1 < items.size() ? "," : "");
            if (col + item.length() + 1 > 116) {
                out.append("\n           ");
                col = 11;
            }
            out.append(' ').append(item);
            col += item.length() + 1;
        }
        return items.isEmpty() ? "" : out.append("\n    ").toString();
    }
}
