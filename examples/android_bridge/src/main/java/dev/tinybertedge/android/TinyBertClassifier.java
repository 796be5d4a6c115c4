package dev.tinybertedge.android;

import android.content.res.AssetManager;

import org.tensorflow.lite.Interpreter;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import dev.tinybertedge.AnswerDecoder;
import dev.tinybertedge.Bundle;
import dev.tinybertedge.BundleException;
import dev.tinybertedge.BundleManifest;
import dev.tinybertedge.EntityDecoder;
import dev.tinybertedge.Golden;
import dev.tinybertedge.OffsetEncoding;
import dev.tinybertedge.SentenceIndex;
import dev.tinybertedge.WordPieceTokenizer;

/**
 * Android-only: an on-device bundle in the app's assets, run with LiteRT. Opening verifies the bundle (every sha256,
 * the manifest's schema), loads model.tflite into a LiteRT {@link Interpreter}; each call tokenizes exactly as the SDK
 * does, pads to the smallest sequence bucket that fits, and runs that bucket's signature ({@code seq_<L>}). What the
 * outputs become is the plain-Java, JVM-tested part, by the bundle's task: {@link #classify} (text classification),
 * {@link #score} (regression), {@link #tag} (NER: {@link EntityDecoder}), {@link #answer} (QA: {@link AnswerDecoder}
 * over the context's windows), {@link #embed} and {@link #search} (embeddings: {@link SentenceIndex}).
 *
 * <p>Not thread-safe (one Interpreter); use one instance per thread, and {@link #close()} it.
 */
public final class TinyBertClassifier implements AutoCloseable {
    /** A label and the probabilities of all labels (softmax of the logits), in the manifest's label order. */
    public static final class Result {
        public final String label;
        public final int labelIndex;
        public final float[] probabilities;
        public final float[] logits;
        public final int sequenceBucket;

        Result(String label, int labelIndex, float[] probabilities, float[] logits, int sequenceBucket) {
            this.label = label;
            this.labelIndex = labelIndex;
            this.probabilities = probabilities;
            this.logits = logits;
            this.sequenceBucket = sequenceBucket;
        }
    }

    private final Bundle bundle;
    private final BundleManifest.Model model;
    private final Interpreter interpreter;

    private TinyBertClassifier(Bundle bundle, BundleManifest.Model model, Interpreter interpreter) {
        this.bundle = bundle;
        this.model = model;
        this.interpreter = interpreter;
    }

    /**
     * Open the bundle folder {@code assetFolder} (e.g. "bundle") of the app's assets. Keep model.tflite
     * uncompressed in the APK ({@code androidResources { noCompress += "tflite" }}) so it is read quickly.
     */
    public static TinyBertClassifier open(AssetManager assets, String assetFolder, int threads) throws IOException {
        Bundle bundle = Bundle.open(assetSource(assets, assetFolder));
        BundleManifest.Model model = bundle.manifest().model("litert");
        if (model == null) {
            throw new BundleException(BundleException.Reason.MALFORMED, "the bundle in assets/" + assetFolder
                    + " has no model.tflite (only ONNX); package it with the litert runtime for Android");
        }
        if (!model.inputDtype.equals("int32") || !model.outputDtype.equals("float32") || model.batchSize != 1) {
            throw new BundleException(BundleException.Reason.UNSUPPORTED_SCHEMA, model.file + " takes "
                    + model.inputDtype + " inputs, gives " + model.outputDtype + " and has batch size "
                    + model.batchSize + "; this classifier supports int32 in, float32 out, batch 1");
        }
        byte[] bytes = bundle.readFile(model.file);  // checked against the manifest again as it is read
        ByteBuffer buffer = ByteBuffer.allocateDirect(bytes.length).order(ByteOrder.nativeOrder());
        buffer.put(bytes).rewind();
        Interpreter.Options options = new Interpreter.Options().setNumThreads(threads);
        return new TinyBertClassifier(bundle, model, new Interpreter(buffer, options));
    }

    public BundleManifest manifest() {
        return bundle.manifest();
    }

    /** Classify one text. Empty text is fine ([CLS] [SEP]); a long one is truncated to the manifest's max_length. */
    public Result classify(String text) {
        requireTask(BundleManifest.TEXT_CLASSIFICATION, "score(text)");
        WordPieceTokenizer.Encoding encoding = bundle.encode(text, model);
        float[] logits = run(encoding);
        float[] probabilities = softmax(logits);
        int best = 0;
        for (int i = 1; i < probabilities.length; i++) {
            if (probabilities[i] > probabilities[best]) {
                best = i;
            }
        }
        return new Result(bundle.manifest().labels.get(best), best, probabilities, logits,
                encoding.inputIds.length);
    }

    /**
     * The score of one text for a regression bundle (task "regression": the model's one output, as the SDK's
     * runtime returns it). A long text is truncated to the manifest's max_length.
     */
    public float score(String text) {
        requireTask(BundleManifest.REGRESSION, "classify(text)");
        return run(bundle.encode(text, model))[0];
    }

    /** The score of a sentence pair (STS-B's similarity of {@code text} and {@code pair}) for a regression bundle. */
    public float score(String text, String pair) {
        requireTask(BundleManifest.REGRESSION, "classify(text)");
        return run(bundle.encode(text, pair, model))[0];
    }

    /**
     * The entities of a text for a token classification bundle, with their character spans in {@code text} (UTF-16
     * indices: {@code text.substring(e.start, e.end)}). A text longer than max_length tokens is truncated; words past
     * it get no tag.
     */
    public EntityDecoder.TaggedText tag(String text) {
        requireTask(BundleManifest.TOKEN_CLASSIFICATION, "the method of its task");
        OffsetEncoding encoding = bundle.tokenizer().encodeWithOffsets(text, bundle.manifest().maxLength);
        float[][] logits = runPerToken(encoding.padded(model.bucketFor(encoding.length()), padId()))[0];
        return new EntityDecoder(bundle.manifest().labels).decode(encoding, logits);
    }

    /**
     * The answer to a question in a context, for a question answering bundle: the context is cut into windows of
     * max_length tokens (overlapping by the manifest's doc_stride, at most a third of max_length), each window is run,
     * and the best span over all of them is returned with its character span in {@code context}. Fails with an
     * {@link IllegalArgumentException} when the question leaves no room for the context.
     */
    public AnswerDecoder.Answer answer(String question, String context) {
        requireTask(BundleManifest.QUESTION_ANSWERING, "the method of its task");
        BundleManifest manifest = bundle.manifest();
        List<OffsetEncoding> windows = bundle.tokenizer().encodeWindows(question, context, manifest.maxLength,
                manifest.effectiveDocStride());
        List<float[]> starts = new ArrayList<>();
        List<float[]> ends = new ArrayList<>();
        for (OffsetEncoding window : windows) {
            float[][][] outputs = runPerToken(window.padded(model.bucketFor(window.length()), padId()));
            starts.add(outputs[0][0]);
            ends.add(outputs[1][0]);
        }
        return new AnswerDecoder(manifest.nBest, manifest.maxAnswerLength).decode(windows, starts, ends);
    }

    /**
     * The sentence vector of a text for an embedding bundle (pooling and normalisation are in the model). A text
     * longer than max_length tokens is truncated; an empty or whitespace-only text is "[CLS] [SEP]", one defined
     * vector, as in the SDK.
     */
    public float[] embed(String text) {
        requireTask(BundleManifest.EMBEDDING, "the method of its task");
        return run(bundle.encode(text, model));
    }

    /**
     * Read an index the SDK built ({@code build_index(load_bundle(path, model="litert"), docs).save(...)}) and
     * check it: refused when corrupted or built by another model file than this bundle's model.tflite.
     */
    public SentenceIndex openIndex(InputStream in, String name) throws IOException {
        requireTask(BundleManifest.EMBEDDING, "the method of its task");
        return SentenceIndex.read(in, name).checkModel(bundle, model);
    }

    /** The top {@code k} documents of an index for a query text: exact, by dot product (cosine similarity). */
    public List<SentenceIndex.Hit> search(SentenceIndex index, String query, int k) {
        return index.search(embed(query), k);
    }

    private void requireTask(String task, String instead) {
        if (!task.equals(bundle.manifest().task)) {
            throw new IllegalStateException("this bundle is for the task \"" + bundle.manifest().task
                    + "\"; use " + instead + " instead");
        }
    }

    private int padId() {
        return bundle.tokenizer().padId();
    }

    /** Classify several texts, one after another (the model's batch size is 1). */
    public List<Result> classify(List<String> texts) {
        List<Result> results = new ArrayList<>(texts.size());
        for (String text : texts) {
            results.add(classify(text));
        }
        return results;
    }

    /**
     * Re-run the bundle's golden vectors on this device: token ids must match exactly, logits within the bundle's
     * tolerance. Returns one message per failing case (empty when the device reproduces the SDK).
     */
    public List<String> verifyGolden() {
        List<String> failures = new ArrayList<>(bundle.goldenTokenMismatches());
        Golden golden = bundle.golden();
        for (int i = 0; i < golden.cases.size(); i++) {
            Golden.Case c = golden.cases.get(i);
            double[] expected = c.logits.get(model.file);
            if (expected == null) {
                failures.add("golden case " + i + " has no logits for " + model.file);
                continue;
            }
            WordPieceTokenizer.Encoding encoding = bundle.encode(c.text, c.textPair, model);
            float[] actual;
            if (bundle.manifest().perToken()) {
                float[][][] outputs = runPerToken(encoding);
                int width = golden.width;
                actual = new float[encoding.length * width];
                for (int t = 0; t < encoding.length; t++) {
                    for (int k = 0; k < width; k++) {
                        // NER: [1][seq][labels]; QA: start and end, each [1][seq]
                        actual[t * width + k] = outputs.length == 1 ? outputs[0][t][k] : outputs[k][0][t];
                    }
                }
            } else {
                actual = run(encoding);
            }
            String problem = golden.compareLogits(expected, actual);
            if (problem != null) {
                failures.add("golden case " + i + ": " + problem);
            }
        }
        return failures;
    }

    private float[] run(WordPieceTokenizer.Encoding encoding) {
        int bucket = encoding.inputIds.length;
        Map<String, Object> inputs = new HashMap<>();
        int[][][] rows = {{encoding.inputIds}, {encoding.attentionMask}, {encoding.tokenTypeIds}};  // types: pairs
        String[] names = {"input_ids", "attention_mask", "token_type_ids"};
        for (int i = 0; i < names.length; i++) {
            if (model.inputNames.contains(names[i])) {
                inputs.put(names[i], rows[i]);
            }
        }
        int width = BundleManifest.EMBEDDING.equals(bundle.manifest().task) ? bundle.golden().width
                : bundle.manifest().outputWidth();
        float[][] logits = new float[1][width];
        Map<String, Object> outputs = new HashMap<>();
        outputs.put(model.outputName, logits);
        interpreter.runSignature(inputs, outputs, model.signatureFor(bucket));
        return logits[0];
    }

    /**
     * A per-token model's outputs for one padded encoding: NER gives {[1][seq][labels]}; QA gives
     * {start [1][seq], end [1][seq]} (as {@code float[2][1][seq]}), in the manifest's output_names order.
     */
    private float[][][] runPerToken(WordPieceTokenizer.Encoding encoding) {
        int bucket = encoding.inputIds.length;
        Map<String, Object> inputs = new HashMap<>();
        int[][][] rows = {{encoding.inputIds}, {encoding.attentionMask}, {encoding.tokenTypeIds}};
        String[] names = {"input_ids", "attention_mask", "token_type_ids"};
        for (int i = 0; i < names.length; i++) {
            if (model.inputNames.contains(names[i])) {
                inputs.put(names[i], rows[i]);
            }
        }
        Map<String, Object> outputs = new HashMap<>();
        float[][][] result;
        if (BundleManifest.QUESTION_ANSWERING.equals(bundle.manifest().task)) {
            result = new float[2][1][bucket];
            outputs.put(model.outputNames.get(0), result[0]);
            outputs.put(model.outputNames.get(1), result[1]);
        } else {
            float[][][] logits = new float[1][bucket][bundle.manifest().outputWidth()];
            outputs.put(model.outputName, logits);
            result = new float[][][] {logits[0]};
        }
        interpreter.runSignature(inputs, outputs, model.signatureFor(bucket));
        return result;
    }

    private static float[] softmax(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double sum = 0;
        double[] e = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            e[i] = Math.exp(logits[i] - max);
            sum += e[i];
        }
        float[] p = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            p[i] = (float) (e[i] / sum);
        }
        return p;
    }

    @Override
    public void close() {
        interpreter.close();
    }

    /** The bundle's files from assets/&lt;folder&gt;/ (assets hold no symbolic links). */
    private static Bundle.FileSource assetSource(AssetManager assets, String folder) {
        return new Bundle.FileSource() {
            @Override
            public InputStream open(String name) throws IOException {
                try {
                    return assets.open(folder + "/" + name, AssetManager.ACCESS_STREAMING);
                } catch (FileNotFoundException exc) {
                    throw new FileNotFoundException("assets/" + folder + "/" + name);
                }
            }

            @Override
            public boolean isSymbolicLink(String name) {
                return false;
            }

            @Override
            public String describe() {
                return "assets/" + folder;
            }
        };
    }
}
