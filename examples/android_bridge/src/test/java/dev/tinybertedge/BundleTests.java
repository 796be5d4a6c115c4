package dev.tinybertedge;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The bundle reader: opening a good bundle, and refusing every kind of damaged one. Damage is done to copies in a
 * temporary folder: of a synthetic bundle written here (so the reader is tested without the Python packager), and of
 * a real bundle from `tinybert-edge package` when one is given.
 */
final class BundleTests {
    private BundleTests() {}

    /** Results of checking a real bundle's golden token ids. */
    static int goldenVectors;
    static int goldenMismatches;

    static void runSynthetic(Path work, Path unicodeTables) throws Exception {
        Path dir = Files.createDirectories(work.resolve("synthetic"));
        writeSyntheticBundle(dir, unicodeTables);
        Check.test("synthetic bundle opens, buckets are chosen by length", () -> {
            Bundle bundle = Bundle.open(dir);
            BundleManifest.Model model = bundle.manifest().model("litert");
            Check.equal(16, model.bucketFor(3), "short text");
            Check.equal(16, model.bucketFor(16), "exactly 16");
            Check.equal(32, model.bucketFor(17), "one over");
            Check.equal(32, model.bucketFor(500), "beyond the largest bucket");
            Check.equal("seq_32", model.signatureFor(32), "signature");
            WordPieceTokenizer.Encoding e = bundle.encode("hello world", model);
            Check.equal(16, e.inputIds.length, "padded to the bucket");
            Check.equal(4, e.length, "real tokens");
            StringBuilder longText = new StringBuilder();
            for (int i = 0; i < 40; i++) {
                longText.append("hello ");
            }
            Check.equal(32, bundle.encode(longText.toString(), model).inputIds.length, "truncated into the top bucket");
            Check.equal(List.of(), bundle.goldenTokenMismatches(), "golden token ids");
            Check.equal(null, bundle.golden().compareLogits(new double[] {1.0, 0.0, -1.0},
                    new float[] {1.01f, 0.0f, -1.0f}), "logits within tolerance");
            Check.isTrue(bundle.golden().compareLogits(new double[] {1.0, 0.0, -1.0},
                    new float[] {1.2f, 0.0f, -1.0f}) != null, "logits beyond tolerance");
            Check.isTrue(bundle.golden().compareLogits(new double[] {0.52, 0.5, -1.0},
                    new float[] {0.5f, 0.52f, -1.0f}) == null, "a flipped near tie is accepted");
            Check.isTrue(bundle.readFile("model.tflite").length > 0, "model bytes");
        });
        runTamperTests(dir, work.resolve("synthetic-damaged"));

        Path regression = Files.createDirectories(work.resolve("synthetic-regression"));
        writeSyntheticBundle(regression, unicodeTables, true);
        Check.test("synthetic regression bundle opens: no labels, one score per text", () -> {
            Bundle bundle = Bundle.open(regression);
            Check.equal(BundleManifest.REGRESSION, bundle.manifest().task, "task");
            Check.equal(1, bundle.manifest().outputWidth(), "output width");
            Check.equal(List.of(), bundle.manifest().labels, "labels");
            Check.equal(null, bundle.golden().compareLogits(new double[] {3.25}, new float[] {3.26f}),
                    "a score within tolerance");
        });
        damage("a regression bundle that lists labels is refused", regression, work.resolve("regression-damaged"),
                BundleException.Reason.MALFORMED, "regression bundle has none",
                copy -> editManifest(copy, "\"labels\": []", "\"labels\": [\"score\"]"));
        Check.test("a classifier bundle says it is one (no task field: a bundle written before tasks existed)", () ->
                Check.equal(BundleManifest.TEXT_CLASSIFICATION, Bundle.open(dir).manifest().task, "task"));
    }

    /**
     * An index file against a real embedding bundle: "bound to FILE" when it opens and one of the bundle's model
     * files built it (the other model files, if any, must refuse it), else the refusal's message.
     */
    static String checkIndex(Path bundleDir, Path indexFile) throws IOException {
        Bundle bundle = Bundle.open(bundleDir);
        SentenceIndex index = SentenceIndex.read(indexFile);
        String bound = null;
        String refusal = null;
        for (BundleManifest.Model model : bundle.manifest().models) {
            try {
                index.checkModel(bundle, model);
                bound = model.file;
            } catch (BundleException exc) {
                refusal = exc.getMessage();
            }
        }
        return bound != null ? "bound to " + bound + " (" + index.size() + " documents, " + index.precision + ")"
                : refusal;
    }

    static void runReal(Path bundleDir, Path work) throws IOException {
        Bundle bundle;
        try {
            bundle = Bundle.open(bundleDir);
        } catch (IOException exc) {
            Check.failures.add("bundle " + bundleDir + ": " + exc.getMessage());
            System.err.println("FAIL bundle " + bundleDir + ": " + exc.getMessage());
            return;  // damaging a damaged bundle further proves nothing
        }
        Check.test("real bundle opens and its golden token ids match", () -> {
            List<String> mismatches = bundle.goldenTokenMismatches();
            goldenVectors = bundle.golden().cases.size();
            goldenMismatches = mismatches.size();
            for (String m : mismatches) {
                System.err.println("golden mismatch: " + m);
            }
            Check.equal(List.of(), mismatches, "golden token mismatches");
            for (BundleManifest.Model model : bundle.manifest().models) {
                for (Golden.Case c : bundle.golden().cases) {
                    Check.isTrue(c.logits.containsKey(model.file), "golden logits for " + model.file);
                }
            }
        });
        runTamperTests(bundleDir, work.resolve("real-damaged"));
    }

    /** Each kind of damage, on a fresh copy, must be refused with the right reason. */
    static void runTamperTests(Path good, Path scratch) throws IOException {
        damage("a flipped byte in vocab.txt is tampering", good, scratch, BundleException.Reason.TAMPERED,
                "tampered", dir -> {
                    byte[] b = Files.readAllBytes(dir.resolve("vocab.txt"));
                    b[b.length / 2] ^= 0x01;
                    Files.write(dir.resolve("vocab.txt"), b);
                });
        damage("a truncated golden.json is refused", good, scratch, BundleException.Reason.MISSING_OR_TRUNCATED,
                "truncated", dir -> {
                    byte[] b = Files.readAllBytes(dir.resolve("golden.json"));
                    Files.write(dir.resolve("golden.json"), java.util.Arrays.copyOf(b, b.length - 10));
                });
        damage("a grown model file is refused", good, scratch, BundleException.Reason.MISSING_OR_TRUNCATED,
                "larger than", dir -> {
                    String model = modelFile(dir);
                    Files.write(dir.resolve(model), new byte[] {0}, java.nio.file.StandardOpenOption.APPEND);
                });
        damage("a missing unicode_tables.txt is refused", good, scratch, BundleException.Reason.MISSING_OR_TRUNCATED,
                "missing", dir -> Files.delete(dir.resolve("unicode_tables.txt")));
        damage("a missing manifest.json is refused", good, scratch, BundleException.Reason.MISSING_OR_TRUNCATED,
                "missing", dir -> Files.delete(dir.resolve("manifest.json")));
        damage("an unknown schema_version is refused", good, scratch, BundleException.Reason.UNSUPPORTED_SCHEMA,
                "schema_version is 2", dir -> editManifest(dir, "\"schema_version\": 1", "\"schema_version\": 2"));
        damage("a bundle of a task this reader does not implement is refused, naming the task", good, scratch,
                BundleException.Reason.UNSUPPORTED_TASK, "task \"summarization\", which this reader does not "
                        + "implement", dir -> {
                    String manifest = Files.readString(dir.resolve("manifest.json"));
                    Matcher m = Pattern.compile("\"task\": \"[^\"]*\"").matcher(manifest);
                    if (m.find()) {
                        editManifest(dir, m.group(0), "\"task\": \"summarization\"");
                    } else {  // a bundle written before tasks existed: add the field
                        editManifest(dir, "\"labels\":", "\"task\": \"summarization\",\n  \"labels\":");
                    }
                });
        damage("another format is refused", good, scratch, BundleException.Reason.UNSUPPORTED_SCHEMA,
                "not a tinybert-edge bundle", dir -> editManifest(dir, "\"tinybert-edge-bundle\"", "\"other\""));
        damage("a path escaping the folder is refused", good, scratch, BundleException.Reason.UNSAFE_PATH,
                "not a plain file name", dir -> editManifest(dir, "\"golden.json\": {", "\"../golden.json\": {"));
        damage("a symbolic link is refused", good, scratch, BundleException.Reason.UNSAFE_PATH, "symbolic link",
                dir -> {
                    Path outside = dir.resolveSibling(dir.getFileName() + "-vocab-outside.txt");
                    Files.move(dir.resolve("vocab.txt"), outside);
                    Files.createSymbolicLink(dir.resolve("vocab.txt"), outside);
                });
        damage("a manifest that is not JSON is refused", good, scratch, BundleException.Reason.MALFORMED,
                "invalid JSON", dir -> editManifest(dir, "\"labels\"", "'labels'"));
        damage("vocab.txt that is not UTF-8 is refused even with a matching checksum", good, scratch,
                BundleException.Reason.MALFORMED, "not valid UTF-8", dir -> {
                    byte[] b = Files.readAllBytes(dir.resolve("vocab.txt"));
                    byte[] bad = java.util.Arrays.copyOf(b, b.length + 2);
                    bad[b.length] = (byte) 0xC3;
                    bad[b.length + 1] = (byte) 0x28;
                    Files.write(dir.resolve("vocab.txt"), bad);
                    relist(dir, "vocab.txt");
                });
        damage("a special-token id that disagrees with vocab.txt is refused", good, scratch,
                BundleException.Reason.MALFORMED, "inconsistent", dir -> {
                    String manifest = Files.readString(dir.resolve("manifest.json"));
                    Matcher m = Pattern.compile("\"cls_id\": (\\d+)").matcher(manifest);
                    if (m.find()) {
                        editManifest(dir, m.group(0), "\"cls_id\": " + (Integer.parseInt(m.group(1)) + 1));
                    } else {  // a manifest without the optional ids: add a wrong one
                        editManifest(dir, "\"type\": \"bert-wordpiece\",", "\"type\": \"bert-wordpiece\", \"cls_id\": 0,");
                    }
                });
    }

    interface Damage {
        void apply(Path dir) throws Exception;
    }

    private static void damage(String name, Path good, Path scratch, BundleException.Reason reason, String message,
                               Damage damage) {
        Check.test("tamper: " + name + " (" + good.getFileName() + ")", () -> {
            Path copy = scratch.resolve("case");
            deleteTree(scratch);
            copyFolder(good, copy);
            damage.apply(copy);
            BundleException exc = Check.fails(BundleException.class, message, () -> Bundle.open(copy));
            Check.equal(reason, exc.reason(), "reason");
        });
    }

    private static String modelFile(Path dir) throws IOException {
        for (String name : new String[] {"model.tflite", "model.onnx"}) {
            if (Files.exists(dir.resolve(name))) {
                return name;
            }
        }
        throw new IOException("no model file in " + dir);
    }

    static void editManifest(Path dir, String from, String to) throws IOException {
        Path manifest = dir.resolve("manifest.json");
        String text = Files.readString(manifest, StandardCharsets.UTF_8);
        Check.isTrue(text.contains(from), "the manifest contains " + from);
        Files.writeString(manifest, text.replace(from, to), StandardCharsets.UTF_8);
    }

    /** Rewrite a file's sha256 and size in the manifest (to get past the checksum and test what comes after). */
    static void relist(Path dir, String name) throws Exception {
        byte[] bytes = Files.readAllBytes(dir.resolve(name));
        Path manifest = dir.resolve("manifest.json");
        String text = Files.readString(manifest, StandardCharsets.UTF_8);
        Pattern entry = Pattern.compile("(\"" + Pattern.quote(name)
                + "\":\\s*\\{\\s*\"sha256\":\\s*\")[0-9a-f]{64}(\",\\s*\"bytes\":\\s*)\\d+");
        Matcher m = entry.matcher(text);
        Check.isTrue(m.find(), "the manifest lists " + name);
        String replaced = m.replaceFirst("$1" + sha256(bytes) + "$2" + bytes.length);
        Files.writeString(manifest, replaced, StandardCharsets.UTF_8);
    }

    static String sha256(byte[] bytes) throws Exception {
        return Bundle.hex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    /** A small but complete bundle: tiny vocab, the given Unicode tables, a stand-in model file, golden ids. */
    static void writeSyntheticBundle(Path dir, Path unicodeTables) throws Exception {
        writeSyntheticBundle(dir, unicodeTables, false);
    }

    /** The synthetic bundle of a classifier (three labels), or of a regression model (task "regression", one score). */
    static void writeSyntheticBundle(Path dir, Path unicodeTables, boolean regression) throws Exception {
        StringBuilder vocab = new StringBuilder();
        for (String token : TokenizerTests.VOCAB) {
            vocab.append(token).append('\n');
        }
        Files.writeString(dir.resolve("vocab.txt"), vocab, StandardCharsets.UTF_8);
        Files.copy(unicodeTables, dir.resolve("unicode_tables.txt"));
        Files.write(dir.resolve("model.tflite"), "not a real model: the JVM tests never run it".getBytes(
                StandardCharsets.US_ASCII));
        WordPieceTokenizer tok = new WordPieceTokenizer(TokenizerTests.vocab(), WordPieceTokenizer.Settings.uncased(),
                UnicodeTables.read(unicodeTables));
        StringBuilder golden = new StringBuilder("{\n  \"tolerance\": {\"max_abs_logit_diff\": 0.05, "
                + "\"argmax_margin\": 0.1},\n  \"cases\": [\n");
        String[] texts = {"hello, world!", "Café 中文 \uD83D\uDE00", ""};
        for (int i = 0; i < texts.length; i++) {
            int[] ids = tok.encode(texts[i], 32);
            golden.append("    {\"text\": ").append(Json.quote(texts[i])).append(", \"input_ids\": ")
                    .append(ints(ids, -1)).append(", \"attention_mask\": ").append(ints(ids, 1))
                    .append(", \"token_type_ids\": ").append(ints(ids, 0))
                    .append(", \"logits\": {\"model.tflite\": ").append(regression ? "[3.25]" : "[0.5, -0.25, 1e-3]")
                    .append("}, \"torch_logits\": []}")
                    .append(i + 1 < texts.length ? ",\n" : "\n");
        }
        golden.append("  ]\n}\n");
        Files.writeString(dir.resolve("golden.json"), golden, StandardCharsets.UTF_8);
        StringBuilder files = new StringBuilder();
        String[] names = {"golden.json", "model.tflite", "unicode_tables.txt", "vocab.txt"};
        for (int i = 0; i < names.length; i++) {
            byte[] b = Files.readAllBytes(dir.resolve(names[i]));
            files.append("    \"").append(names[i]).append("\": {\"sha256\": \"").append(sha256(b))
                    .append("\", \"bytes\": ").append(b.length).append(i + 1 < names.length ? "},\n" : "}\n");
        }
        String manifest = "{\n"
                + "  \"format\": \"tinybert-edge-bundle\",\n  \"schema_version\": 1,\n  \"sdk_version\": \"test\",\n"
                + "  \"created\": \"2026-01-01T00:00:00Z\",\n"
                + "  \"models\": [{\"file\": \"model.tflite\", \"runtime\": \"litert\", \"precision\": \"int8\","
                + " \"input_names\": [\"input_ids\", \"attention_mask\", \"token_type_ids\"], \"input_dtype\": \"int32\","
                + " \"output_name\": \"output_0\", \"output_dtype\": \"float32\", \"batch_size\": 1,"
                + " \"sequence_buckets\": [16, 32], \"signatures\": [\"seq_16\", \"seq_32\"], \"quantization\": {}}],\n"
                + "  \"tokenizer\": {\"type\": \"bert-wordpiece\", \"vocab_file\": \"vocab.txt\","
                + " \"unicode_tables_file\": \"unicode_tables.txt\", \"do_lower_case\": true, \"strip_accents\": true,"
                + " \"tokenize_chinese_chars\": true, \"clean_text\": true, \"max_length\": 32,"
                + " \"max_input_chars_per_word\": 100, \"continuing_subword_prefix\": \"##\", \"unk_token\": \"[UNK]\","
                + " \"cls_token\": \"[CLS]\", \"sep_token\": \"[SEP]\", \"pad_token\": \"[PAD]\","
                + " \"mask_token\": \"[MASK]\", \"unk_id\": 1, \"cls_id\": 2, \"sep_id\": 3, \"pad_id\": 0,"
                + " \"special_tokens\": [\"[PAD]\", \"[UNK]\", \"[CLS]\", \"[SEP]\", \"[MASK]\"]},\n"
                + (regression ? "  \"task\": \"regression\",\n  \"labels\": [],\n"
                              : "  \"labels\": [\"negative\", \"neutral\", \"positive\"],\n")
                + "  \"golden_file\": \"golden.json\",\n"
                + "  \"files\": {\n" + files + "  }\n}\n";
        Files.writeString(dir.resolve("manifest.json"), manifest, StandardCharsets.UTF_8);
    }

    /** The ids (fill < 0) or an array of {@code fill} of the same length, as JSON. */
    private static String ints(int[] ids, int fill) {
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < ids.length; i++) {
            out.append(i == 0 ? "" : ", ").append(fill < 0 ? ids[i] : fill);
        }
        return out.append(']').toString();
    }

    static void copyFolder(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                Files.copy(p, to.resolve(p.getFileName().toString()));
            }
        }
    }

    static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : (Iterable<Path>) walk.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
