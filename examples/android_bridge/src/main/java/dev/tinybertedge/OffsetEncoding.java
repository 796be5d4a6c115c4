package dev.tinybertedge;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * An encoded text, or question and context window, with offsets: {@code [CLS] first [SEP] (second [SEP])}, unpadded,
 * and for each token its span in the text it came from, which text that is and its word there; the SDK runtime's
 * {@code Encoding} with offsets (tinybert_edge/runtime/wordpiece.py). Special tokens ([CLS], [SEP]) have sequence
 * and word -1 and the span (0, 0). Spans are UTF-16 indices into {@link #texts}; {@link #codePointOffsets} gives the
 * code point indices the Python runtime reports.
 */
public final class OffsetEncoding {
    public final int[] inputIds;
    public final int[] tokenTypeIds;
    /** Start and end (exclusive) of each token in {@code texts[sequenceIds[i]]}, in UTF-16 units. */
    public final int[] starts;
    public final int[] ends;
    /** 0 for the first text, 1 for the second (a question's context), -1 for [CLS]/[SEP]. */
    public final int[] sequenceIds;
    /** The token's word in its text, -1 for [CLS]/[SEP]. */
    public final int[] wordIds;
    /** The texts the spans index: the text, or the question and the whole context. */
    public final List<String> texts;

    private OffsetEncoding(int[] inputIds, int[] tokenTypeIds, int[] starts, int[] ends, int[] sequenceIds,
                           int[] wordIds, List<String> texts) {
        this.inputIds = inputIds;
        this.tokenTypeIds = tokenTypeIds;
        this.starts = starts;
        this.ends = ends;
        this.sequenceIds = sequenceIds;
        this.wordIds = wordIds;
        this.texts = texts;
    }

    /** Number of tokens, [CLS] and [SEP] included. */
    public int length() {
        return inputIds.length;
    }

    /** The model inputs, padded with {@code padId} to {@code length} positions. */
    public WordPieceTokenizer.Encoding padded(int length, int padId) {
        if (inputIds.length > length) {
            throw new IllegalArgumentException(inputIds.length + " ids do not fit in " + length + " positions");
        }
        int[] ids = Arrays.copyOf(inputIds, length);
        Arrays.fill(ids, inputIds.length, length, padId);
        int[] mask = new int[length];
        Arrays.fill(mask, 0, inputIds.length, 1);
        return new WordPieceTokenizer.Encoding(ids, mask, Arrays.copyOf(tokenTypeIds, length), inputIds.length);
    }

    /** [start, end] of each token in code points of its text (what the Python runtime reports), (0, 0) for specials. */
    public int[][] codePointOffsets() {
        int[][] out = new int[inputIds.length][2];
        for (int i = 0; i < inputIds.length; i++) {
            if (sequenceIds[i] < 0) {
                continue;
            }
            String text = texts.get(sequenceIds[i]);
            out[i][0] = text.codePointCount(0, starts[i]);
            out[i][1] = out[i][0] + text.codePointCount(starts[i], ends[i]);
        }
        return out;
    }

    /** [CLS] first [SEP] (second [SEP]) from the parts' spans. */
    static OffsetEncoding assemble(int clsId, int sepId, String[] texts, TokenSpans[] parts) {
        int n = 1;
        for (TokenSpans part : parts) {
            n += part.size() + 1;
        }
        int[] ids = new int[n];
        int[] types = new int[n];
        int[] starts = new int[n];
        int[] ends = new int[n];
        int[] sequences = new int[n];
        int[] words = new int[n];
        ids[0] = clsId;
        sequences[0] = -1;
        words[0] = -1;
        int at = 1;
        for (int p = 0; p < parts.length; p++) {
            TokenSpans part = parts[p];
            for (int i = 0; i < part.size(); i++, at++) {
                ids[at] = part.ids[i];
                types[at] = p;
                starts[at] = part.starts[i];
                ends[at] = part.ends[i];
                sequences[at] = p;
                words[at] = part.wordIds[i];
            }
            ids[at] = sepId;
            types[at] = p;
            sequences[at] = -1;
            words[at] = -1;
            at++;
        }
        return new OffsetEncoding(ids, types, starts, ends, sequences, words,
                Collections.unmodifiableList(Arrays.asList(texts.clone())));
    }
}
