package dev.tinybertedge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A bundle's {@code golden.json}: texts with the token ids and logits recorded when the bundle was packaged. A
 * device re-runs them to prove that its tokenizer and model reproduce the SDK (docs/bundle_format.md).
 */
public final class Golden {
    /** One golden text. */
    public static final class Case {
        public final String text;
        /** The second text of a pair (a question answering case's context); null for one text. */
        public final String textPair;
        public final int[] inputIds;
        public final int[] attentionMask;
        public final int[] tokenTypeIds;
        /**
         * Expected outputs per model file name: one row per text, or for a per-token task (NER, QA) one row per real
         * token, concatenated (see {@link Golden#width}).
         */
        public final Map<String, double[]> logits;

        Case(String text, String textPair, int[] inputIds, int[] attentionMask, int[] tokenTypeIds,
             Map<String, double[]> logits) {
            this.text = text;
            this.textPair = textPair;
            this.inputIds = inputIds;
            this.attentionMask = attentionMask;
            this.tokenTypeIds = tokenTypeIds;
            this.logits = logits;
        }
    }

    public final double maxAbsLogitDiff;
    public final double argmaxMargin;
    public final List<Case> cases;
    /** Values per row: the labels (classifier, tagger), 1 (regression), 2 (QA), the vector width (embeddings). */
    public final int width;
    /** Whether each case holds one row per token (NER, QA) rather than one per text. */
    public final boolean perToken;
    /** Whether a row's argmax is a decision (a label) that must not flip: classifiers and taggers. */
    public final boolean argmaxIsDecision;

    private Golden(double maxAbsLogitDiff, double argmaxMargin, List<Case> cases, int width, boolean perToken,
                   boolean argmaxIsDecision) {
        this.argmaxIsDecision = argmaxIsDecision;
        this.width = width;
        this.perToken = perToken;
        this.maxAbsLogitDiff = maxAbsLogitDiff;
        this.argmaxMargin = argmaxMargin;
        this.cases = cases;
    }

    /**
     * @param labelCount values per row the manifest implies, or 0 when it does not say (embeddings: the first case's
     *                   width then holds for all)
     * @param perToken   whether cases hold one row per real token (NER, QA)
     * @param argmaxIsDecision whether each row's argmax is a label to keep (classification, NER)
     */
    static Golden parse(String text, String source, int labelCount, boolean perToken, boolean argmaxIsDecision)
            throws BundleException {
        try {
            Map<String, Object> root = Json.object(Json.parse(text, source), source);
            Map<String, Object> tolerance = Json.object(Json.field(root, "tolerance", source), source + ".tolerance");
            double maxAbs = Json.number(Json.field(tolerance, "max_abs_logit_diff", source + ".tolerance"),
                    source + ".tolerance.max_abs_logit_diff");
            double margin = Json.number(Json.field(tolerance, "argmax_margin", source + ".tolerance"),
                    source + ".tolerance.argmax_margin");
            if (!(maxAbs >= 0) || !(margin >= 0)) {
                throw malformed(source + ".tolerance values must be non-negative numbers");
            }
            List<Object> casesJson = Json.array(Json.field(root, "cases", source), source + ".cases");
            if (casesJson.isEmpty()) {
                throw malformed(source + ".cases is empty; a bundle needs golden vectors to be verifiable");
            }
            List<Case> cases = new ArrayList<>();
            for (int i = 0; i < casesJson.size(); i++) {
                String at = source + ".cases[" + i + "]";
                Map<String, Object> c = Json.object(casesJson.get(i), at);
                int[] ids = Json.intArray(Json.field(c, "input_ids", at), at + ".input_ids");
                int[] mask = Json.intArray(Json.field(c, "attention_mask", at), at + ".attention_mask");
                int[] types = Json.intArray(Json.field(c, "token_type_ids", at), at + ".token_type_ids");
                if (mask.length != ids.length || types.length != ids.length) {
                    throw malformed(at + ": input_ids, attention_mask and token_type_ids differ in length");
                }
                Map<String, double[]> logits = new LinkedHashMap<>();
                Map<String, Object> logitsJson = Json.object(Json.field(c, "logits", at), at + ".logits");
                for (Map.Entry<String, Object> e : logitsJson.entrySet()) {
                    String where = at + ".logits[\"" + e.getKey() + "\"]";
                    List<Object> rows = perToken ? Json.array(e.getValue(), where) : List.of(e.getValue());
                    if (perToken && rows.size() != ids.length) {
                        throw malformed(where + " has " + rows.size() + " rows for " + ids.length + " tokens");
                    }
                    List<Double> flat = new ArrayList<>();
                    for (int r = 0; r < rows.size(); r++) {
                        String rowAt = perToken ? where + "[" + r + "]" : where;
                        List<Object> values = Json.array(rows.get(r), rowAt);
                        if (labelCount == 0 && values.isEmpty()) {
                            throw malformed(rowAt + " is empty");
                        }
                        if (labelCount == 0) {
                            labelCount = values.size();
                        }
                        if (values.size() != labelCount) {
                            throw malformed(rowAt + " has " + values.size() + " values, but the model returns "
                                    + labelCount + (perToken ? " per token" : " per text"));
                        }
                        for (int k = 0; k < values.size(); k++) {
                            flat.add(Json.number(values.get(k), rowAt + "[" + k + "]"));
                        }
                    }
                    logits.put(e.getKey(), flat.stream().mapToDouble(Double::doubleValue).toArray());
                }
                String pair = c.containsKey("text_pair") ? Json.string(c, "text_pair", at) : null;
                cases.add(new Case(Json.string(c, "text", at), pair, ids, mask, types,
                        Collections.unmodifiableMap(logits)));
            }
            return new Golden(maxAbs, margin, Collections.unmodifiableList(cases), labelCount, perToken,
                    argmaxIsDecision);
        } catch (Json.JsonException exc) {
            throw new BundleException(BundleException.Reason.MALFORMED, exc.getMessage()
                    + "; golden.json is damaged: re-package the bundle", exc);
        }
    }

    /**
     * Whether {@code actual} logits pass against the expected ones: every value within max_abs_logit_diff and the
     * same argmax, except that another argmax is accepted when the expected top two are closer than argmax_margin.
     * Returns null when they pass, else the reason.
     */
    public String compareLogits(double[] expected, float[] actual) {
        if (actual.length != expected.length) {
            return "the model returned " + actual.length + " values, expected " + expected.length;
        }
        if (!perToken || expected.length <= width) {
            return compareRow(expected, actual);
        }
        for (int start = 0; start < expected.length; start += width) {
            String problem = compareRow(Arrays.copyOfRange(expected, start, start + width),
                    Arrays.copyOfRange(actual, start, start + width));
            if (problem != null) {
                return "token " + start / width + ": " + problem;
            }
        }
        return null;
    }

    /**
     * One row of a per-token (or the one of a per-text) output; for QA, whose row holds a start and an end logit
     * rather than label logits, only the values are compared.
     */
    private String compareRow(double[] expected, float[] actual) {
        if (actual.length != expected.length) {
            return "the model returned " + actual.length + " logits, expected " + expected.length;
        }
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
        }
        if (!(worst <= maxAbsLogitDiff)) {
            return "max |logit difference| " + worst + " exceeds " + maxAbsLogitDiff;
        }
        if (!argmaxIsDecision) {
            return null;
        }
        int expectedTop = argmax(expected);
        int actualTop = 0;
        for (int i = 1; i < actual.length; i++) {
            if (actual[i] > actual[actualTop]) {
                actualTop = i;
            }
        }
        if (actualTop != expectedTop) {
            double runnerUp = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < expected.length; i++) {
                if (i != expectedTop) {
                    runnerUp = Math.max(runnerUp, expected[i]);
                }
            }
            if (!(expected[expectedTop] - runnerUp < argmaxMargin)) {
                return "the top label is " + actualTop + ", expected " + expectedTop;
            }
        }
        return null;
    }

    private static int argmax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    private static BundleException malformed(String message) {
        return new BundleException(BundleException.Reason.MALFORMED, message + "; re-package the bundle");
    }
}
