package dev.tinybertedge;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Every Unicode scalar value through each step of the Java tokenizer, against a sweep file that Hugging Face's
 * {@code tokenizers} wrote for the same steps (tests/integration/test_android_bridge_jvm.py writes it). Line format,
 * tab-separated, strings as space-separated hex code points:
 * {@code cp  clean(c)  cjk(c)  strip("a"+c)  lower(c)  pretokenize("a"+c+"b") as pieces joined by "|"}.
 */
final class UnicodeSweep {
    private UnicodeSweep() {}

    static final String[] STEPS = {"clean_text", "chinese_chars", "strip_accents", "lowercase", "pre_tokenize"};

    /** Returns mismatches per step; prints the first few of each. */
    static Map<String, Integer> run(Path sweepFile, UnicodeTables unicode, int[] checkedOut) throws IOException {
        Map<String, Integer> vocab = new HashMap<>();
        for (String t : new String[] {"[PAD]", "[UNK]", "[CLS]", "[SEP]"}) {
            vocab.put(t, vocab.size());
        }
        WordPieceTokenizer[] steps = {
            tokenizer(vocab, unicode, false, false, false, true),
            tokenizer(vocab, unicode, false, false, true, false),
            tokenizer(vocab, unicode, false, true, false, false),
            tokenizer(vocab, unicode, true, false, false, false),
        };
        Map<String, Integer> mismatches = new HashMap<>();
        for (String step : STEPS) {
            mismatches.put(step, 0);
        }
        int checked = 0;
        try (BufferedReader reader = Files.newBufferedReader(sweepFile, StandardCharsets.UTF_8)) {
            String line;
            while ((line = reader.readLine()) != null) {
                String[] fields = line.split("\t", -1);
                if (fields.length != 6) {
                    throw new IOException(sweepFile + ": line " + (checked + 1) + " has " + fields.length
                            + " fields, expected 6");
                }
                int cp = Integer.parseInt(fields[0], 16);
                String c = new String(Character.toChars(cp));
                String[] actual = {
                    hex(steps[0].normalize(c)),
                    hex(steps[1].normalize(c)),
                    hex(steps[2].normalize("a" + c)),
                    hex(steps[3].normalize(c)),
                    pieces(steps[0].preTokenize("a" + c + "b")),
                };
                for (int i = 0; i < STEPS.length; i++) {
                    if (!actual[i].equals(fields[i + 1])) {
                        int n = mismatches.merge(STEPS[i], 1, Integer::sum);
                        if (n <= 20) {
                            System.err.println("sweep (" + unicode.describe() + ") " + STEPS[i] + " U+" + fields[0] + ": java [" + actual[i]
                                    + "] hf [" + fields[i + 1] + "]");
                        }
                    }
                }
                checked++;
            }
        }
        checkedOut[0] = checked;
        return mismatches;
    }

    private static WordPieceTokenizer tokenizer(Map<String, Integer> vocab, UnicodeTables unicode, boolean lower,
                                                boolean strip, boolean cjk, boolean clean) {
        return new WordPieceTokenizer(vocab, new WordPieceTokenizer.Settings(lower, strip, cjk, clean, 100, "[UNK]",
                "[CLS]", "[SEP]", "[PAD]", "##", List.of()), unicode);
    }

    static String hex(String s) {
        StringBuilder out = new StringBuilder();
        s.codePoints().forEach(cp -> {
            if (out.length() > 0) {
                out.append(' ');
            }
            out.append(Integer.toHexString(cp).toUpperCase());
        });
        return out.toString();
    }

    private static String pieces(List<String> words) {
        List<String> hexed = new ArrayList<>();
        for (String w : words) {
            hexed.add(hex(w));
        }
        return String.join("|", hexed);
    }

    /** Usage: {@code UnicodeSweep sweep.tsv [unicode_tables.txt]}; without tables, the JDK's data is swept. */
    public static void main(String[] args) throws IOException {
        int[] checked = new int[1];
        UnicodeTables unicode = args.length > 1 ? UnicodeTables.read(Path.of(args[1])) : UnicodeTables.jdk();
        Map<String, Integer> mismatches = run(Path.of(args[0]), unicode, checked);
        System.out.println("checked " + checked[0] + " code points with " + unicode.describe() + "; mismatches "
                + mismatches);
    }
}
