package dev.tinybertedge;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Entry point of run_jvm_tests.sh: unit tests, the tokenizer parity file, the Unicode sweep and the bundle checks.
 * Prints one JSON summary line on stdout, writes it to --report when given, exits 1 on any failure or mismatch and
 * 2 on bad arguments.
 *
 * <pre>
 * RunJvmTests [--parity FILE] [--postprocess FILE] [--vocab FILE] [--index FILE (with --bundle)] [--bundle DIR] [--unicode-tables FILE] [--sweep FILE]
 *             [--work DIR] [--report FILE]
 * </pre>
 * --unicode-tables defaults to the bundle's; --vocab to the bundle's vocab.txt.
 */
public final class RunJvmTests {
    private RunJvmTests() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                System.err.println("error: expected --option VALUE pairs, got '" + args[i] + "'; see the usage in "
                        + "run_jvm_tests.sh");
                System.exit(2);
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        for (String key : opts.keySet()) {
            if (!List.of("parity", "postprocess", "vocab", "bundle", "index", "unicode-tables", "sweep",
                    "work", "report").contains(key)) {
                System.err.println("error: unknown option --" + key + "; allowed: --parity --postprocess --vocab --bundle --index"
                        + " --unicode-tables --sweep --work --report");
                System.exit(2);
            }
        }
        Path bundle = path(opts, "bundle");
        Path tablesFile = path(opts, "unicode-tables");
        if (tablesFile == null && bundle != null) {
            tablesFile = bundle.resolve("unicode_tables.txt");
        }
        Path vocab = path(opts, "vocab");
        if (vocab == null && bundle != null) {
            vocab = bundle.resolve("vocab.txt");
        }
        Path work = opts.containsKey("work") ? Path.of(opts.get("work")) : Files.createTempDirectory("jvm-tests");

        // The table sources every tokenizer check runs with: the bundle's file (what a device uses) and the JDK's.
        List<UnicodeTables> sources = new ArrayList<>();
        Map<String, String> sourceKeys = new LinkedHashMap<>();
        if (tablesFile != null) {
            try {
                UnicodeTables fromFile = UnicodeTables.read(tablesFile);
                sources.add(fromFile);
                sourceKeys.put(fromFile.describe(), "unicode_tables_file");
            } catch (IOException | IllegalArgumentException exc) {
                if (opts.containsKey("unicode-tables")) {
                    System.err.println("error: cannot read --unicode-tables: " + exc.getMessage());
                    System.exit(2);
                }
                // The bundle's own file is damaged or missing: the bundle check below reports it.
                System.err.println("note: the bundle's Unicode tables are unusable (" + exc.getMessage()
                        + "); tokenizer checks run with the JDK's data only");
                tablesFile = null;
            }
        }
        // The JDK source's corrections are generated for JDK 17's Unicode 13; another JDK would report differences
        // that are no defect of the device path, so there it is left out (and the summary says so).
        boolean jdk17 = Runtime.version().feature() == 17;
        if (jdk17) {
            sources.add(UnicodeTables.jdk());
            sourceKeys.put(UnicodeTables.jdk().describe(), "jdk");
        }

        JsonOut summary = new JsonOut();
        if (!jdk17) {
            summary.put("jdk_tables", "not checked: their corrections are for JDK 17, this is Java "
                    + Runtime.version().feature());
        }
        for (UnicodeTables source : sources.isEmpty() ? List.of(UnicodeTables.jdk()) : sources) {
            TokenizerTests.run(source);
        }
        TokenizerTests.runTableFormat();
        JsonTests.run();
        if (tablesFile != null) {
            BundleTests.runSynthetic(work, tablesFile);
        }

        boolean mismatch = false;
        if (opts.containsKey("parity")) {
            if (vocab == null) {
                System.err.println("error: --parity needs --vocab (or --bundle, whose vocab.txt is used)");
                System.exit(2);
            }
            JsonOut parity = new JsonOut();
            JsonOut counts = new JsonOut();
            int strings = 0;
            for (UnicodeTables source : sources) {
                ParityCheck.Result r = ParityCheck.run(Path.of(opts.get("parity")), vocab, source, 10);
                strings = r.strings;
                counts.put(sourceKeys.get(source.describe()), r.mismatches);
                parity.put("reference", r.reference);
                mismatch |= r.mismatches > 0 || r.strings == 0;
            }
            parity.put("file", opts.get("parity"));
            parity.put("strings", strings);
            parity.put("mismatches", counts);
            summary.put("parity", parity);
        }
        if (opts.containsKey("postprocess")) {
            if (vocab == null) {
                System.err.println("error: --postprocess needs --vocab (or --bundle, whose vocab.txt is used)");
                System.exit(2);
            }
            JsonOut post = new JsonOut();
            JsonOut counts = new JsonOut();
            for (UnicodeTables source : sources) {
                PostprocessParity.Result r = PostprocessParity.run(Path.of(opts.get("postprocess")), vocab, source,
                        10);
                JsonOut kinds = new JsonOut();
                r.cases.forEach(kinds::put);
                post.put("cases", kinds);
                post.put("index_refusals", r.indexRefusals);
                counts.put(sourceKeys.get(source.describe()), r.mismatches);
                mismatch |= r.mismatches > 0 || r.cases.isEmpty();
            }
            post.put("file", opts.get("postprocess"));
            post.put("mismatches", counts);
            summary.put("postprocess", post);
        }
        if (opts.containsKey("sweep")) {
            JsonOut sweep = new JsonOut();
            for (UnicodeTables source : sources) {
                int[] checked = new int[1];
                Map<String, Integer> m = UnicodeSweep.run(Path.of(opts.get("sweep")), source, checked);
                int total = m.values().stream().mapToInt(Integer::intValue).sum();
                sweep.put("code_points", checked[0]);
                sweep.put("mismatches_" + sourceKeys.get(source.describe()), total);
                mismatch |= total > 0 || checked[0] == 0;
            }
            summary.put("unicode_sweep", sweep);
        }
        if (bundle != null) {
            BundleTests.runReal(bundle, work);
            JsonOut golden = new JsonOut();
            golden.put("bundle", bundle.toString());
            golden.put("vectors_checked", BundleTests.goldenVectors);
            golden.put("token_mismatches", BundleTests.goldenMismatches);
            summary.put("golden", golden);
            if (opts.containsKey("index")) {
                JsonOut index = new JsonOut();
                index.put("file", opts.get("index"));
                index.put("result", BundleTests.checkIndex(bundle, Path.of(opts.get("index"))));
                summary.put("index", index);
            }
        }
        summary.put("unit_checks_passed", Check.passed);
        summary.put("unit_checks_failed", Check.failures.size());
        summary.put("java", System.getProperty("java.version"));
        boolean ok = Check.failures.isEmpty() && !mismatch;
        summary.put("ok", ok);
        String line = summary.toString();
        System.out.println(line);
        if (opts.containsKey("report")) {
            Files.writeString(Path.of(opts.get("report")), line + "\n", StandardCharsets.UTF_8);
        }
        System.exit(ok ? 0 : 1);
    }

    private static Path path(Map<String, String> opts, String key) {
        return opts.containsKey(key) ? Path.of(opts.get(key)) : null;
    }

    /** A JSON object writer for the summary (insertion order; strings, numbers, booleans and nested objects). */
    static final class JsonOut {
        private final Map<String, Object> fields = new LinkedHashMap<>();

        void put(String key, Object value) {
            fields.put(key, value);
        }

        @Override
        public String toString() {
            StringBuilder out = new StringBuilder("{");
            for (Map.Entry<String, Object> e : fields.entrySet()) {
                if (out.length() > 1) {
                    out.append(", ");
                }
                out.append(Json.quote(e.getKey())).append(": ");
                Object v = e.getValue();
                out.append(v instanceof String ? Json.quote((String) v) : String.valueOf(v));
            }
            return out.append('}').toString();
        }
    }
}
