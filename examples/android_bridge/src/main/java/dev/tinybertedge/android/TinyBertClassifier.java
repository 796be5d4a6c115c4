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

import dev.tinybertedge.Bundle;
import dev.tinybertedge.BundleException;
import dev.tinybertedge.BundleManifest;
import dev.tinybertedge.Golden;
import dev.tinybertedge.WordPieceTokenizer;

/**
 * Android-only: a text classifier over an on-device bundle in the app's assets. Opening verifies the bundle (every
 * sha256, the manifest's schema), loads model.tflite into a LiteRT {@link Interpreter}, and classifies a text by
 * tokenizing it exactly as the SDK does, padding to the smallest sequence bucket that fits, and running that bucket's
 * signature ({@code seq_<L>}).
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

    private void requireTask(String task, String instead) {
        if (!task.equals(bundle.manifest().task)) {
            throw new IllegalStateException("this bundle is for the task \"" + bundle.manifest().task
                    + "\"; use " + instead + " instead");
        }
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
            String problem = golden.compareLogits(expected, run(bundle.encode(c.text, model)));
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
        float[][] logits = new float[1][bundle.manifest().outputWidth()];
        Map<String, Object> outputs = new HashMap<>();
        outputs.put(model.outputName, logits);
        interpreter.runSignature(inputs, outputs, model.signatureFor(bucket));
        return logits[0];
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
