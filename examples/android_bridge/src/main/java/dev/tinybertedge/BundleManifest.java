package dev.tinybertedge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A bundle's {@code manifest.json}, read and checked (docs/bundle_format.md, schema_version 1). Construction fails
 * with a {@link BundleException} on an unknown format or schema version, a missing or mistyped field, a file name
 * that could leave the bundle folder, or fields that contradict each other.
 */
public final class BundleManifest {
    public static final String FORMAT = "tinybert-edge-bundle";
    public static final long SCHEMA_VERSION = 1;
    public static final String FILE_NAME = "manifest.json";
    /** The task of a manifest without a "task" field (every bundle written before tasks existed). */
    public static final String TEXT_CLASSIFICATION = "text-classification";
    /** One score per text or pair (GLUE's STS-B): the model returns one value, the manifest has no labels. */
    public static final String REGRESSION = "regression";
    /** NER: logits per token, IOB2 labels, words grouped into entities with character offsets. */
    public static final String TOKEN_CLASSIFICATION = "token-classification";
    /** Extractive QA: start and end logits per token over question + context windows. */
    public static final String QUESTION_ANSWERING = "question-answering";
    /** Sentence embeddings: the model returns the (pooled, normalised) sentence vector. */
    public static final String EMBEDDING = "embedding";
    /** The tasks whose outputs this reader knows how to turn into results. */
    public static final List<String> KNOWN_TASKS = List.of(TEXT_CLASSIFICATION, REGRESSION, TOKEN_CLASSIFICATION,
            QUESTION_ANSWERING, EMBEDDING);
    /** The word aggregations of token classification this reader implements. */
    public static final List<String> AGGREGATIONS = List.of("first");
    private static final Pattern IOB2 = Pattern.compile("O|[BI]-.+");

    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
    private static final Pattern SIGNATURE = Pattern.compile("seq_([1-9][0-9]*)");

    /** One model file of the bundle. */
    public static final class Model {
        public final String file;
        /** "litert" (.tflite) or "onnxruntime" (.onnx). */
        public final String runtime;
        public final String precision;
        public final List<String> inputNames;
        public final String inputDtype;
        public final String outputName;
        /** Every output in the order the task reads them (QA: start_logits, end_logits); [outputName] otherwise. */
        public final List<String> outputNames;
        public final String outputDtype;
        /** Fixed batch size of a LiteRT model; 0 for a dynamic ONNX batch. */
        public final int batchSize;
        /** Ascending sequence lengths, one LiteRT signature each; empty for ONNX (dynamic axes). */
        public final int[] sequenceBuckets;
        public final List<String> signatures;

        Model(String file, String runtime, String precision, List<String> inputNames, String inputDtype,
              String outputName, List<String> outputNames, String outputDtype, int batchSize, int[] sequenceBuckets,
              List<String> signatures) {
            this.file = file;
            this.runtime = runtime;
            this.precision = precision;
            this.inputNames = inputNames;
            this.inputDtype = inputDtype;
            this.outputName = outputName;
            this.outputNames = outputNames;
            this.outputDtype = outputDtype;
            this.batchSize = batchSize;
            this.sequenceBuckets = sequenceBuckets;
            this.signatures = signatures;
        }

        /** The smallest bucket that holds {@code tokens} ids; the largest bucket when none does. */
        public int bucketFor(int tokens) {
            if (sequenceBuckets.length == 0) {
                throw new IllegalStateException(file + " has dynamic sequence axes and no buckets");
            }
            for (int bucket : sequenceBuckets) {
                if (tokens <= bucket) {
                    return bucket;
                }
            }
            return sequenceBuckets[sequenceBuckets.length - 1];
        }

        /** The signature of a bucket ("seq_128"). */
        public String signatureFor(int bucket) {
            for (int i = 0; i < sequenceBuckets.length; i++) {
                if (sequenceBuckets[i] == bucket) {
                    return signatures.get(i);
                }
            }
            throw new IllegalArgumentException(file + " has no bucket " + bucket);
        }
    }

    /** A listed file: its sha256 (lower-case hex) and size. */
    public static final class FileEntry {
        public final String sha256;
        public final long bytes;

        FileEntry(String sha256, long bytes) {
            this.sha256 = sha256;
            this.bytes = bytes;
        }
    }

    public final String sdkVersion;
    public final String created;
    public final List<Model> models;
    public final WordPieceTokenizer.Settings tokenizerSettings;
    /** Longest input in ids, [CLS] and [SEP] included. */
    public final int maxLength;
    public final String vocabFile;
    public final String unicodeTablesFile;
    /** The ids the manifest states (if it does) for [UNK], [CLS], [SEP], [PAD]; {@link Bundle} checks them. */
    public final Map<String, Integer> specialIds;
    /** What the outputs mean: {@link #TEXT_CLASSIFICATION} (one logit per label) or {@link #REGRESSION} (one score). */
    public final String task;
    /** The labels in output order; empty for regression. */
    public final List<String> labels;
    public final String goldenFile;
    public final Map<String, FileEntry> files;
    /** Token classification: how a word's tag is chosen ("first": its first sub-token's); null for other tasks. */
    public final String aggregation;
    /** Question answering: the manifest's document stride, answer length limit and candidates per end; 0 otherwise. */
    public final int docStride;
    public final int maxAnswerLength;
    public final int nBest;

    private BundleManifest(String sdkVersion, String created, List<Model> models,
                           WordPieceTokenizer.Settings tokenizerSettings, int maxLength, String vocabFile,
                           String unicodeTablesFile, Map<String, Integer> specialIds, String task, List<String> labels,
                           String goldenFile, Map<String, FileEntry> files, String aggregation, int docStride,
                           int maxAnswerLength, int nBest) {
        this.sdkVersion = sdkVersion;
        this.created = created;
        this.models = models;
        this.tokenizerSettings = tokenizerSettings;
        this.maxLength = maxLength;
        this.vocabFile = vocabFile;
        this.unicodeTablesFile = unicodeTablesFile;
        this.specialIds = specialIds;
        this.task = task;
        this.labels = labels;
        this.goldenFile = goldenFile;
        this.files = files;
        this.aggregation = aggregation;
        this.docStride = docStride;
        this.maxAnswerLength = maxAnswerLength;
        this.nBest = nBest;
    }

    /**
     * The document stride for windows of {@code maxLength} tokens: the manifest's doc_stride, at most a third of the
     * length (as the SDK runtime's effective_stride).
     */
    public int effectiveDocStride() {
        return WordPieceTokenizer.effectiveStride(docStride, maxLength);
    }

    /** Whether the model returns rows per token (NER, QA) rather than one row per text. */
    public boolean perToken() {
        return TOKEN_CLASSIFICATION.equals(task) || QUESTION_ANSWERING.equals(task);
    }

    /**
     * How many values the model returns per text (per token for NER and QA): one per label for a classifier or a
     * tagger, one score for regression, start and end for QA; 0 for embeddings, whose width the manifest does not
     * state (the golden vectors show it).
     */
    public int outputWidth() {
        switch (task) {
            case REGRESSION:
                return 1;
            case QUESTION_ANSWERING:
                return 2;
            case EMBEDDING:
                return 0;
            default:
                return labels.size();
        }
    }

    /** The preferred model of a runtime ("litert" or "onnxruntime"), or null when the bundle has none. */
    public Model model(String runtime) {
        for (Model model : models) {
            if (model.runtime.equals(runtime)) {
                return model;
            }
        }
        return null;
    }

    /** Parse and check the text of manifest.json. */
    public static BundleManifest parse(String text) throws BundleException {
        String where = FILE_NAME;
        try {
            Map<String, Object> root = Json.object(Json.parse(text, where), where);
            // Format and version first: a later schema may have changed every other field.
            Object format = root.get("format");
            if (!FORMAT.equals(format)) {
                throw new BundleException(BundleException.Reason.UNSUPPORTED_SCHEMA, where + ": format is "
                        + describe(format) + ", not \"" + FORMAT + "\"; this is not a tinybert-edge bundle");
            }
            Object version = root.get("schema_version");
            if (!(version instanceof Long) || (Long) version != SCHEMA_VERSION) {
                throw new BundleException(BundleException.Reason.UNSUPPORTED_SCHEMA, where + ": schema_version is "
                        + describe(version) + "; this reader knows only " + SCHEMA_VERSION
                        + ": re-package the bundle with a matching SDK or update the app");
            }
            // The task next: a bundle of a task this reader does not implement is refused before anything else is
            // read, with the reason, rather than misread as a classifier.
            String task = root.containsKey("task") ? Json.string(root, "task", where) : TEXT_CLASSIFICATION;
            if (!KNOWN_TASKS.contains(task)) {
                throw new BundleException(BundleException.Reason.UNSUPPORTED_TASK, where + ": the bundle is for the "
                        + "task \"" + task + "\", which this reader does not implement (it knows "
                        + String.join(", ", KNOWN_TASKS) + "); update the app's tinybert-edge bridge to a version "
                        + "that implements it");
            }
            String sdkVersion = Json.string(root, "sdk_version", where);
            String created = Json.string(root, "created", where);

            Map<String, FileEntry> files = new LinkedHashMap<>();
            Map<String, Object> filesJson = Json.object(Json.field(root, "files", where), where + ".files");
            for (Map.Entry<String, Object> entry : filesJson.entrySet()) {
                String name = entry.getKey();
                checkFileName(name);
                String at = where + ".files[\"" + name + "\"]";
                Map<String, Object> file = Json.object(entry.getValue(), at);
                String sha = Json.string(file, "sha256", at);
                if (!SHA256.matcher(sha).matches()) {
                    throw malformed(at + ".sha256 is not 64 lower-case hex digits");
                }
                long bytes = Json.integer(file, "bytes", at);
                if (bytes < 0) {
                    throw malformed(at + ".bytes is negative");
                }
                files.put(name, new FileEntry(sha, bytes));
            }

            List<Object> modelsJson = Json.array(Json.field(root, "models", where), where + ".models");
            if (modelsJson.isEmpty()) {
                throw malformed(where + ".models is empty; a bundle needs model.tflite or model.onnx");
            }
            List<Model> models = new ArrayList<>();
            for (int i = 0; i < modelsJson.size(); i++) {
                models.add(model(Json.object(modelsJson.get(i), where + ".models[" + i + "]"),
                        where + ".models[" + i + "]", files));
            }

            String tw = where + ".tokenizer";
            Map<String, Object> tok = Json.object(Json.field(root, "tokenizer", where), tw);
            WordPieceTokenizer.Settings settings = tokenizerSettings(tok, tw);
            int maxLength = maxLength(tok, tw);
            // The *_id fields are optional (the packager may leave them out); when present they must agree with
            // vocab.txt, which Bundle checks.
            Map<String, Integer> specialIds = new LinkedHashMap<>();
            String[][] ids = {{settings.unkToken, "unk_id"}, {settings.clsToken, "cls_id"},
                              {settings.sepToken, "sep_id"}, {settings.padToken, "pad_id"}};
            for (String[] id : ids) {
                if (tok.containsKey(id[1])) {
                    specialIds.put(id[0], nonNegativeInt(tok, id[1], tw));
                }
            }
            String vocabFile = listedFile(Json.string(tok, "vocab_file", tw), tw + ".vocab_file", files);
            String tablesFile = listedFile(Json.string(tok, "unicode_tables_file", tw), tw + ".unicode_tables_file",
                    files);
            for (Model model : models) {
                int largest = model.sequenceBuckets.length == 0 ? Integer.MAX_VALUE
                        : model.sequenceBuckets[model.sequenceBuckets.length - 1];
                if (maxLength > largest) {
                    throw malformed(tw + ".max_length " + maxLength + " is beyond the largest bucket " + largest
                            + " of " + model.file + "; re-package with a max_length that fits");
                }
            }

            List<String> labels = Json.stringArray(Json.field(root, "labels", where), where + ".labels");
            if (labels.isEmpty() && (TEXT_CLASSIFICATION.equals(task) || TOKEN_CLASSIFICATION.equals(task))) {
                throw malformed(where + ".labels is empty");
            }
            if (!labels.isEmpty() && !TEXT_CLASSIFICATION.equals(task) && !TOKEN_CLASSIFICATION.equals(task)) {
                throw malformed(where + ".labels lists " + labels.size() + " labels, but a " + task + " bundle has "
                        + "none (its model returns " + (REGRESSION.equals(task) ? "one score" : EMBEDDING.equals(task)
                        ? "a vector" : "start and end logits") + ")");
            }
            String aggregation = null;
            if (TOKEN_CLASSIFICATION.equals(task)) {
                for (String label : labels) {
                    if (!IOB2.matcher(label).matches()) {
                        throw malformed(where + ".labels holds \"" + label + "\", not an IOB2 tag (O, B-X, I-X)");
                    }
                }
                aggregation = root.containsKey("aggregation") ? Json.string(root, "aggregation", where) : "first";
                if (!AGGREGATIONS.contains(aggregation)) {
                    throw new BundleException(BundleException.Reason.UNSUPPORTED_TASK, where + ": aggregation \""
                            + aggregation + "\" is not one this reader implements (" + String.join(", ", AGGREGATIONS)
                            + "); update the app's tinybert-edge bridge");
                }
            }
            int docStride = 0;
            int maxAnswerLength = 0;
            int nBest = 0;
            if (QUESTION_ANSWERING.equals(task)) {
                docStride = positiveInt(root, "doc_stride", where);
                maxAnswerLength = positiveInt(root, "max_answer_length", where);
                nBest = positiveInt(root, "n_best", where);
                for (Model model : models) {
                    if (model.outputNames.size() != 2) {
                        throw malformed(where + ": the question answering model " + model.file + " lists "
                                + model.outputNames + " as outputs; it needs start_logits and end_logits");
                    }
                }
            }
            String goldenFile = listedFile(Json.string(root, "golden_file", where), where + ".golden_file", files);
            return new BundleManifest(sdkVersion, created, Collections.unmodifiableList(models), settings, maxLength,
                    vocabFile, tablesFile, Collections.unmodifiableMap(specialIds), task,
                    Collections.unmodifiableList(new ArrayList<>(labels)), goldenFile,
                    Collections.unmodifiableMap(files), aggregation, docStride, maxAnswerLength, nBest);
        } catch (Json.JsonException exc) {
            throw new BundleException(BundleException.Reason.MALFORMED, exc.getMessage()
                    + "; the manifest is damaged: re-package the bundle", exc);
        }
    }

    /**
     * The tokenizer settings of a manifest's (or a parity file header's) {@code tokenizer} object. The type must be
     * "bert-wordpiece".
     */
    static WordPieceTokenizer.Settings tokenizerSettings(Map<String, Object> tok, String tw)
            throws Json.JsonException, BundleException {
        String type = Json.string(tok, "type", tw);
        if (!type.equals("bert-wordpiece")) {
            throw new BundleException(BundleException.Reason.UNSUPPORTED_SCHEMA, tw + ".type is \"" + type
                    + "\"; this reader implements only \"bert-wordpiece\"");
        }
        int maxChars = positiveInt(tok, "max_input_chars_per_word", tw);
        try {
            return new WordPieceTokenizer.Settings(
                    Json.bool(tok, "do_lower_case", tw), Json.bool(tok, "strip_accents", tw),
                    Json.bool(tok, "tokenize_chinese_chars", tw), Json.bool(tok, "clean_text", tw), maxChars,
                    Json.string(tok, "unk_token", tw), Json.string(tok, "cls_token", tw),
                    Json.string(tok, "sep_token", tw), Json.string(tok, "pad_token", tw),
                    Json.string(tok, "continuing_subword_prefix", tw),
                    Json.stringArray(Json.field(tok, "special_tokens", tw), tw + ".special_tokens"));
        } catch (IllegalArgumentException exc) {
            throw malformed(tw + ": " + exc.getMessage());
        }
    }

    /** {@code max_length} of a tokenizer object: at least 2 (room for [CLS] and [SEP]). */
    static int maxLength(Map<String, Object> tok, String tw) throws Json.JsonException, BundleException {
        int maxLength = positiveInt(tok, "max_length", tw);
        if (maxLength < 2) {
            throw malformed(tw + ".max_length is " + maxLength + "; it needs room for [CLS] and [SEP]");
        }
        return maxLength;
    }

    private static Model model(Map<String, Object> m, String at, Map<String, FileEntry> files)
            throws Json.JsonException, BundleException {
        String file = listedFile(Json.string(m, "file", at), at + ".file", files);
        String runtime = Json.string(m, "runtime", at);
        if (!runtime.equals("litert") && !runtime.equals("onnxruntime")) {
            throw malformed(at + ".runtime is \"" + runtime + "\"; allowed: litert, onnxruntime");
        }
        List<String> inputNames = Json.stringArray(Json.field(m, "input_names", at), at + ".input_names");
        int batchSize = nonNegativeInt(m, "batch_size", at);
        int[] buckets = Json.intArray(Json.field(m, "sequence_buckets", at), at + ".sequence_buckets");
        List<String> signatures = Json.stringArray(Json.field(m, "signatures", at), at + ".signatures");
        if (runtime.equals("litert")) {
            if (buckets.length == 0 || batchSize < 1) {
                throw malformed(at + ": a LiteRT model needs sequence_buckets and a batch_size of at least 1");
            }
            if (signatures.size() != buckets.length) {
                throw malformed(at + ": " + signatures.size() + " signatures for " + buckets.length + " buckets");
            }
            for (int i = 0; i < buckets.length; i++) {
                if (buckets[i] < 2 || (i > 0 && buckets[i] <= buckets[i - 1])) {
                    throw malformed(at + ".sequence_buckets must be ascending lengths of at least 2");
                }
                if (!signatures.get(i).equals("seq_" + buckets[i])
                        || !SIGNATURE.matcher(signatures.get(i)).matches()) {
                    throw malformed(at + ".signatures[" + i + "] is \"" + signatures.get(i) + "\", expected \"seq_"
                            + buckets[i] + "\"");
                }
            }
        } else if (buckets.length != 0 || !signatures.isEmpty()) {
            throw malformed(at + ": an ONNX model has dynamic axes: sequence_buckets and signatures must be empty");
        }
        String outputName = Json.string(m, "output_name", at);
        List<String> outputNames = m.containsKey("output_names")
                ? Json.stringArray(Json.field(m, "output_names", at), at + ".output_names") : List.of(outputName);
        if (outputNames.isEmpty() || !outputNames.get(0).equals(outputName)) {
            throw malformed(at + ".output_names " + outputNames + " does not start with output_name \"" + outputName
                    + "\"");
        }
        return new Model(file, runtime, Json.string(m, "precision", at), Collections.unmodifiableList(inputNames),
                Json.string(m, "input_dtype", at), outputName, Collections.unmodifiableList(outputNames),
                Json.string(m, "output_dtype", at), batchSize, buckets, Collections.unmodifiableList(signatures));
    }

    /** A bundle file name is a plain name: no folder, no "..", no backslash, no control characters. */
    static void checkFileName(String name) throws BundleException {
        boolean bad = name.isEmpty() || name.equals(".") || name.equals("..") || name.contains("/")
                || name.contains("\\") || name.equals(FILE_NAME) || name.chars().anyMatch(c -> c < 0x20 || c == 0x7F);
        if (bad) {
            throw new BundleException(BundleException.Reason.UNSAFE_PATH, FILE_NAME + ": the file name \""
                    + name + "\" is not a plain file name inside the bundle; refusing the bundle");
        }
    }

    private static String listedFile(String name, String at, Map<String, FileEntry> files) throws BundleException {
        checkFileName(name);
        if (!files.containsKey(name)) {
            throw malformed(at + " names \"" + name + "\", which manifest.json#files does not list with a checksum");
        }
        return name;
    }

    private static int positiveInt(Map<String, Object> object, String key, String at) throws Json.JsonException,
            BundleException {
        int value = nonNegativeInt(object, key, at);
        if (value == 0) {
            throw malformed(at + "." + key + " is 0; it must be positive");
        }
        return value;
    }

    private static int nonNegativeInt(Map<String, Object> object, String key, String at)
            throws Json.JsonException, BundleException {
        long value = Json.integer(object, key, at);
        if (value < 0 || value > Integer.MAX_VALUE) {
            throw malformed(at + "." + key + " = " + value + " is out of range");
        }
        return (int) value;
    }

    private static String describe(Object value) {
        if (value == null) {
            return "missing";
        }
        return value instanceof String ? "\"" + value + "\"" : String.valueOf(value);
    }

    private static BundleException malformed(String message) {
        return new BundleException(BundleException.Reason.MALFORMED, message);
    }
}
