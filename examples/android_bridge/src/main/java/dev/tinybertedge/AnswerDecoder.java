package dev.tinybertedge;

import java.util.ArrayList;
import java.util.List;

/**
 * Extractive question answering post-processing, as the SDK runtime does it ({@code best_answer} in
 * tinybert_edge/tasks/question_answering.py): for each window of the context
 * ({@link WordPieceTokenizer#encodeWindows}), the {@code nBest} highest start and end logits among the context's
 * tokens; every pair with end >= start and at most {@code maxAnswerLength} tokens is a candidate, scored by start +
 * end logit; the best over all windows is the answer, its span the characters from its start token's first to its
 * end token's last. Its probability is start probability x end probability, each a softmax over the context tokens
 * of its window. No candidate gives the empty answer (score -infinity).
 */
public final class AnswerDecoder {
    /** The answer: its text, its span [start, end) in the context (UTF-16 indices), score and probability. */
    public static final class Answer {
        public final String text;
        public final int start;
        public final int end;
        public final double score;
        public final double probability;

        Answer(String text, int start, int end, double score, double probability) {
            this.text = text;
            this.start = start;
            this.end = end;
            this.score = score;
            this.probability = probability;
        }

        @Override
        public String toString() {
            return "[" + start + "," + end + ")=" + Json.quote(text) + " score " + score + " p " + probability;
        }
    }

    private final int nBest;
    private final int maxAnswerLength;

    /** @param nBest and @param maxAnswerLength as the manifest's {@code n_best} and {@code max_answer_length}. */
    public AnswerDecoder(int nBest, int maxAnswerLength) {
        if (nBest < 1 || maxAnswerLength < 1) {
            throw new IllegalArgumentException("n_best = " + nBest + " and max_answer_length = " + maxAnswerLength
                    + " must both be positive; re-package the bundle");
        }
        this.nBest = nBest;
        this.maxAnswerLength = maxAnswerLength;
    }

    /**
     * The best answer over the windows of one question and context. {@code startLogits.get(w)} and
     * {@code endLogits.get(w)} are window w's model outputs (at least its length; padding past it is ignored).
     */
    public Answer decode(List<OffsetEncoding> windows, List<float[]> startLogits, List<float[]> endLogits) {
        if (windows.size() != startLogits.size() || windows.size() != endLogits.size()) {
            throw new IllegalArgumentException(windows.size() + " windows but " + startLogits.size() + " start and "
                    + endLogits.size() + " end logit rows; pass one of each per window");
        }
        Answer best = null;
        String context = windows.isEmpty() ? "" : windows.get(0).texts.get(1);
        for (int w = 0; w < windows.size(); w++) {
            OffsetEncoding window = windows.get(w);
            int n = window.length();
            float[] starts = startLogits.get(w);
            float[] ends = endLogits.get(w);
            if (starts.length < n || ends.length < n) {
                throw new IllegalArgumentException("window " + w + " has " + n + " tokens but " + starts.length
                        + " start and " + ends.length + " end logits");
            }
            boolean[] inside = new boolean[n];
            int[] position = new int[n];  // a context token's index among the window's context tokens
            int count = 0;
            for (int i = 0; i < n; i++) {
                inside[i] = window.sequenceIds[i] == 1;
                position[i] = inside[i] ? count++ : count - 1;
            }
            if (count == 0) {
                continue;
            }
            double[] startLp = logSoftmax(starts, inside, count);
            double[] endLp = logSoftmax(ends, inside, count);
            int[] orderS = top(starts, n, inside);
            int[] orderE = top(ends, n, inside);
            for (int s : orderS) {
                for (int e : orderE) {
                    if (e < s || e - s + 1 > maxAnswerLength) {
                        continue;
                    }
                    double score = (double) starts[s] + (double) ends[e];
                    if (best == null || score > best.score) {
                        int charStart = window.starts[s];
                        int charEnd = window.ends[e];
                        best = new Answer(context.substring(charStart, charEnd), charStart, charEnd, score,
                                Math.exp(startLp[position[s]] + endLp[position[e]]));
                    }
                }
            }
        }
        return best != null ? best : new Answer("", 0, 0, Double.NEGATIVE_INFINITY, 0.0);
    }

    /** Indices of the nBest largest values among the inside positions, largest first, ties by position. */
    private int[] top(float[] values, int n, boolean[] inside) {
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            order.add(i);
        }
        // numpy's argsort(-nan_to_num(x, nan=-inf), kind="stable"): descending, NaN last, ties in index order
        order.sort((a, b) -> {
            double x = key(values[a]);
            double y = key(values[b]);
            return x > y ? -1 : x < y ? 1 : 0;  // equal values (0.0 and -0.0 too) keep their order
        });
        List<Integer> kept = new ArrayList<>();
        for (int i : order) {
            if (inside[i] && kept.size() < nBest) {
                kept.add(i);
            }
        }
        return kept.stream().mapToInt(Integer::intValue).toArray();
    }

    private static double key(float value) {
        return Float.isNaN(value) ? Double.NEGATIVE_INFINITY : value;
    }

    /** log softmax over the inside values, indexed by their position among them. */
    private static double[] logSoftmax(float[] values, boolean[] inside, int count) {
        double[] out = new double[count];
        double max = Double.NEGATIVE_INFINITY;
        int k = 0;
        for (int i = 0; i < inside.length; i++) {
            if (inside[i]) {
                out[k++] = values[i];
                max = Math.max(max, values[i]);
            }
        }
        double sum = 0;
        for (int j = 0; j < count; j++) {
            out[j] -= max;
            sum += Math.exp(out[j]);
        }
        double log = Math.log(sum);
        for (int j = 0; j < count; j++) {
            out[j] -= log;
        }
        return out;
    }
}
