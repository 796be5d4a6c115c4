package dev.tinybertedge;

import java.util.ArrayList;
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
        public final int[] inputIds;
        public final int[] attentionMask;
        public final int[] tokenTypeIds;
        /** Expected logits per model file name. */
        public final Map<String, double[]> logits;

        Case(String text, int[] inputIds, int[] attentionMask, int[] tokenTypeIds, Map<String, double[]> logits) {
            this.text = text;
            this.inputIds = inputIds;
            this.attentionMask = attentionMask;
            this.tokenTypeIds = tokenTypeIds;
            this.logits = logits;
        }
    }

    public final double maxAbsLogitDiff;
    public final double argmaxMargin;
    public final List<Case> cases;

    private Golden(double maxAbsLogitDiff, double argmaxMargin, List<Case> cases) {
        this.maxAbsLogitDiff = maxAbsLogitDiff;
        this.argmaxMargin = argmaxMargin;
        this.cases = cases;
    }

    static Golden parse(String text, String source, int labelCount) throws BundleException {
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
                    List<Object> values = Json.array(e.getValue(), at + ".logits[\"" + e.getKey() + "\"]");
                    if (values.size() != labelCount) {
                        throw malformed(at + ".logits[\"" + e.getKey() + "\"] has " + values.size()
                                + " values, but the model returns " + labelCount + " per text");
                    }
                    double[] row = new double[values.size()];
                    for (int k = 0; k < row.length; k++) {
                        row[k] = Json.number(values.get(k), at + ".logits[\"" + e.getKey() + "\"][" + k + "]");
                    }
                    logits.put(e.getKey(), row);
                }
                cases.add(new Case(Json.string(c, "text", at), ids, mask, types, Collections.unmodifiableMap(logits)));
            }
            return new Golden(maxAbs, margin, Collections.unmodifiableList(cases));
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
            return "the model returned " + actual.length + " logits, expected " + expected.length;
        }
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
        }
        if (!(worst <= maxAbsLogitDiff)) {
            return "max |logit difference| " + worst + " exceeds " + maxAbsLogitDiff;
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
