package dev.tinybertedge;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The bridge's post-processing against golden cases that the SDK's Python runtime computed
 * (tinybert_edge/runtime/postprocess_parity.py writes {@code postprocess.jsonl} and its index files): token spans,
 * NER entities from given logits, QA windows and answers from given start/end logits, and top-k search over index
 * files, plus damaged copies of those index files. Counts the cases of each kind and the mismatches.
 */
final class PostprocessParity {
    private PostprocessParity() {}

    static final String FORMAT = "tinybert-edge-postprocess-parity";
    /** Scores and probabilities are recomputed in double from the same float32 inputs: only exp/log rounding differs. */
    static final double SCORE_TOLERANCE = 1e-9;
    /** Search scores are float32 dot products; the summation order differs from numpy's BLAS. */
    static final double SEARCH_TOLERANCE = 1e-5;

    static final class Result {
        final Map<String, Integer> cases = new LinkedHashMap<>();
        int mismatches;
        int indexRefusals;
    }

    static Result run(Path file, Path vocabFile, UnicodeTables unicode, int showFirst) throws Exception {
        Result result = new Result();
        List<String> lines;
        try (BufferedReader reader = Files.newBufferedReader(file, StandardCharsets.US_ASCII)) {
            lines = reader.lines().collect(java.util.stream.Collectors.toList());
        }
        if (lines.isEmpty()) {
            throw new IOException(file + " is empty; write it with postprocess_parity.write_postprocess_parity");
        }
        Map<String, Object> header = Json.object(Json.parse(lines.get(0), file + ": line 1"), "header");
        if (!FORMAT.equals(header.get("format")) || !Long.valueOf(1).equals(header.get("version"))) {
            throw new IOException(file + ": line 1 is not a version 1 " + FORMAT + " header");
        }
        byte[] vocabBytes = Files.readAllBytes(vocabFile);
        String sha = Bundle.hex(MessageDigest.getInstance("SHA-256").digest(vocabBytes));
        if (!sha.equals(Json.string(header, "vocab_sha256", "header"))) {
            throw new IOException(vocabFile + " has sha256 " + sha + " but " + file + " was written with another "
                    + "vocab.txt; pass --vocab with that file");
        }
        Map<String, Object> tok = Json.object(Json.field(header, "tokenizer", "header"), "header.tokenizer");
        WordPieceTokenizer tokenizer = new WordPieceTokenizer(
                WordPieceTokenizer.parseVocab(Utf8.decode(vocabBytes, vocabFile.toString())),
                BundleManifest.tokenizerSettings(tok, "header.tokenizer"), unicode);
        int maxLength = BundleManifest.maxLength(tok, "header.tokenizer");
        EntityDecoder entities = new EntityDecoder(Json.stringArray(Json.field(header, "ner_labels", "header"),
                "header.ner_labels"));

        for (int n = 1; n < lines.size(); n++) {
            if (lines.get(n).isEmpty()) {
                continue;
            }
            String where = file.getFileName() + ": line " + (n + 1);
            Map<String, Object> c = Json.object(Json.parse(lines.get(n), where), where);
            String kind = Json.string(c, "kind", where);
            result.cases.merge(kind, 1, Integer::sum);
            List<String> problems = new ArrayList<>();
            switch (kind) {
                case "offsets":
                    checkOffsets(tokenizer, c, where, problems);
                    break;
                case "ner":
                    checkEntities(tokenizer, entities, maxLength, c, where, problems);
                    break;
                case "qa":
                    checkAnswer(tokenizer, maxLength, c, where, problems);
                    break;
                case "search":
                    result.indexRefusals += checkSearch(file.getParent(), c, where, problems);
                    break;
                default:
                    throw new IOException(where + ": unknown case kind '" + kind + "'");
            }
            if (!problems.isEmpty()) {
                result.mismatches++;
                if (result.mismatches <= showFirst) {
                    System.err.println("postprocess mismatch (" + unicode.describe() + ") " + where + " (" + kind
                            + "):\n  " + String.join("\n  ", problems));
                }
            }
        }
        return result;
    }

    private static void checkOffsets(WordPieceTokenizer tokenizer, Map<String, Object> c, String where,
                                     List<String> problems) throws Json.JsonException {
        String text = Json.string(c, "text", where);
        TokenSpans spans = tokenizer.tokensWithOffsets(text);
        same(problems, "ids", Json.intArray(Json.field(c, "input_ids", where), where), spans.ids);
        same(problems, "starts", Json.intArray(Json.field(c, "starts16", where), where), spans.starts);
        same(problems, "ends", Json.intArray(Json.field(c, "ends16", where), where), spans.ends);
        same(problems, "word ids", Json.intArray(Json.field(c, "word_ids", where), where), spans.wordIds);
        // the ids agree with the plain tokenizer (the path the 100k-string parity corpus checks)
        List<String> tokens = tokenizer.tokenize(text);
        int[] plain = tokens.stream().mapToInt(tokenizer::tokenToId).toArray();
        same(problems, "ids vs tokenize()", plain, spans.ids);
        // and in code points, as the Python runtime reports them
        List<Object> offsets = Json.array(Json.field(c, "offsets", where), where);
        for (int i = 0; i < Math.min(offsets.size(), spans.size()); i++) {
            int[] expected = Json.intArray(offsets.get(i), where);
            int start = text.codePointCount(0, spans.starts[i]);
            int end = start + text.codePointCount(spans.starts[i], spans.ends[i]);
            if (expected[0] != start || expected[1] != end) {
                problems.add("token " + i + " spans code points [" + start + ", " + end + "), expected "
                        + Arrays.toString(expected));
                break;
            }
        }
    }

    private static void checkEntities(WordPieceTokenizer tokenizer, EntityDecoder decoder, int maxLength,
                                      Map<String, Object> c, String where, List<String> problems)
            throws Json.JsonException {
        String text = Json.string(c, "text", where);
        OffsetEncoding encoding = tokenizer.encodeWithOffsets(text, maxLength);
        same(problems, "ids", Json.intArray(Json.field(c, "input_ids", where), where), encoding.inputIds);
        if (!problems.isEmpty()) {
            return;
        }
        EntityDecoder.TaggedText tagged = decoder.decode(encoding, floatRows(Json.field(c, "logits", where), where));
        List<Object> words = Json.array(Json.field(c, "words", where), where);
        if (words.size() != tagged.words.size()) {
            problems.add(tagged.words.size() + " words, expected " + words.size());
            return;
        }
        for (int i = 0; i < words.size(); i++) {
            List<Object> w = Json.array(words.get(i), where);
            EntityDecoder.Word got = tagged.words.get(i);
            if (Json.integer(w.get(0), where) != got.start || Json.integer(w.get(1), where) != got.end
                    || !w.get(2).equals(got.tag)) {
                problems.add("word " + i + ": expected " + w + ", got [" + got.start + ", " + got.end + ", "
                        + got.tag + "]");
            }
        }
        List<Object> expected = Json.array(Json.field(c, "entities", where), where);
        if (expected.size() != tagged.entities.size()) {
            problems.add(tagged.entities.size() + " entities " + tagged.entities + ", expected " + expected.size());
            return;
        }
        for (int i = 0; i < expected.size(); i++) {
            Map<String, Object> e = Json.object(expected.get(i), where);
            EntityDecoder.Entity got = tagged.entities.get(i);
            boolean same = e.get("type").equals(got.type) && Json.integer(e, "start16", where) == got.start
                    && Json.integer(e, "end16", where) == got.end && e.get("text").equals(got.text)
                    && close(Json.number(e.get("score"), where), got.score, SCORE_TOLERANCE);
            if (!same) {
                problems.add("entity " + i + ": expected " + e + ", got " + got);
            }
        }
    }

    private static void checkAnswer(WordPieceTokenizer tokenizer, int maxLength, Map<String, Object> c, String where,
                                    List<String> problems) throws Json.JsonException {
        String question = Json.string(c, "question", where);
        String context = Json.string(c, "context", where);
        int stride = WordPieceTokenizer.effectiveStride((int) Json.integer(c, "doc_stride", where), maxLength);
        List<OffsetEncoding> windows;
        try {
            windows = tokenizer.encodeWindows(question, context, maxLength, stride);
        } catch (IllegalArgumentException exc) {
            if (!c.containsKey("error")) {
                problems.add("encodeWindows refused the pair (" + exc.getMessage() + "); the runtime did not");
            }
            return;
        }
        if (c.containsKey("error")) {
            problems.add("the runtime refused the pair (" + c.get("error") + "); encodeWindows did not");
            return;
        }
        List<Object> expected = Json.array(Json.field(c, "windows", where), where);
        if (expected.size() != windows.size()) {
            problems.add(windows.size() + " windows, expected " + expected.size());
            return;
        }
        List<float[]> starts = new ArrayList<>();
        List<float[]> ends = new ArrayList<>();
        for (int w = 0; w < windows.size(); w++) {
            Map<String, Object> e = Json.object(expected.get(w), where);
            OffsetEncoding got = windows.get(w);
            String at = "window " + w + " ";
            same(problems, at + "ids", Json.intArray(Json.field(e, "input_ids", where), where), got.inputIds);
            same(problems, at + "types", Json.intArray(Json.field(e, "token_type_ids", where), where),
                    got.tokenTypeIds);
            same(problems, at + "sequences", Json.intArray(Json.field(e, "sequence_ids", where), where),
                    got.sequenceIds);
            same(problems, at + "starts", Json.intArray(Json.field(e, "starts16", where), where), got.starts);
            same(problems, at + "ends", Json.intArray(Json.field(e, "ends16", where), where), got.ends);
            float[][] rows = floatRows(Json.field(e, "logits", where), where);
            float[] s = new float[rows.length];
            float[] t = new float[rows.length];
            for (int i = 0; i < rows.length; i++) {
                s[i] = rows[i][0];
                t[i] = rows[i][1];
            }
            starts.add(s);
            ends.add(t);
        }
        if (!problems.isEmpty()) {
            return;
        }
        AnswerDecoder decoder = new AnswerDecoder((int) Json.integer(c, "n_best", where),
                (int) Json.integer(c, "max_answer_length", where));
        AnswerDecoder.Answer got = decoder.decode(windows, starts, ends);
        Map<String, Object> a = Json.object(Json.field(c, "answer", where), where);
        Object score = a.get("score");
        boolean sameScore = score == Json.NULL ? got.score == Double.NEGATIVE_INFINITY
                : Json.number(score, where) == got.score;
        boolean same = a.get("text").equals(got.text) && Json.integer(a, "start16", where) == got.start
                && Json.integer(a, "end16", where) == got.end && sameScore
                && close(Json.number(a.get("probability"), where), got.probability, SCORE_TOLERANCE);
        if (!same) {
            problems.add("answer: expected " + a + ", got " + got);
        }
    }

    /** Returns how many damaged copies of the index were refused (three are made). */
    private static int checkSearch(Path folder, Map<String, Object> c, String where, List<String> problems)
            throws Exception {
        Path file = folder.resolve(Json.string(c, "index", where));
        String modelSha = Json.string(c, "model_sha256", where);
        SentenceIndex index = SentenceIndex.read(file).checkModel(modelSha, "model.tflite");
        int k = (int) Json.integer(c, "k", where);
        float[][] queries = floatRows(Json.field(c, "queries", where), where);
        List<Object> expected = Json.array(Json.field(c, "hits", where), where);
        for (int q = 0; q < queries.length; q++) {
            List<SentenceIndex.Hit> hits = index.search(queries[q], k);
            List<Object> want = Json.array(expected.get(q), where);
            if (want.size() != hits.size()) {
                problems.add("query " + q + ": " + hits.size() + " hits, expected " + want.size());
                continue;
            }
            for (int r = 0; r < hits.size(); r++) {
                Map<String, Object> h = Json.object(want.get(r), where);
                SentenceIndex.Hit got = hits.get(r);
                if (!h.get("id").equals(got.id) || got.rank != r + 1
                        || !close(Json.number(h.get("score"), where), got.score, SEARCH_TOLERANCE)) {
                    problems.add("query " + q + " rank " + (r + 1) + ": expected " + h + ", got " + got);
                }
            }
        }
        // Damaged copies and another model's hash are refused before any search, as the Python runtime does.
        int refused = 0;
        byte[] bytes = Files.readAllBytes(file);
        byte[] flipped = bytes.clone();
        flipped[bytes.length / 2] ^= 0x01;
        byte[] truncated = Arrays.copyOf(bytes, bytes.length - 9);
        for (byte[] damaged : List.of(flipped, truncated)) {
            try {
                SentenceIndex.read(new java.io.ByteArrayInputStream(damaged), file + " (damaged)");
                problems.add("a damaged copy of " + file.getFileName() + " was read without complaint");
            } catch (BundleException exc) {
                refused++;
            }
        }
        try {
            index.checkModel("0".repeat(64), "model.tflite");
            problems.add("an index was accepted for another model");
        } catch (BundleException exc) {
            if (exc.getMessage().contains("built by another model")) {
                refused++;
            }
        }
        return refused;
    }

    private static float[][] floatRows(Object value, String where) throws Json.JsonException {
        List<Object> rows = Json.array(value, where);
        float[][] out = new float[rows.size()][];
        for (int i = 0; i < out.length; i++) {
            List<Object> row = Json.array(rows.get(i), where);
            out[i] = new float[row.size()];
            for (int j = 0; j < row.size(); j++) {
                out[i][j] = (float) Json.number(row.get(j), where);
            }
        }
        return out;
    }

    private static boolean close(double expected, double actual, double tolerance) {
        return Math.abs(expected - actual) <= tolerance * Math.max(1.0, Math.abs(expected));
    }

    private static void same(List<String> problems, String what, int[] expected, int[] actual) {
        if (!Arrays.equals(expected, actual)) {
            problems.add(what + ": expected " + Arrays.toString(expected) + ", got " + Arrays.toString(actual));
        }
    }
}
