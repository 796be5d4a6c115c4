package dev.tinybertedge;

import java.util.Arrays;

/**
 * Tokens of one text with their spans: each token's id, its [start, end) span in the text (UTF-16 indices, so
 * {@code text.substring(starts[i], ends[i])} is what the token came from) and the index of its word (words are what
 * the pre-tokenizer splits; a special token typed in the text is a word of its own). Made by
 * {@link WordPieceTokenizer#tokensWithOffsets}.
 */
public final class TokenSpans {
    public final int[] ids;
    public final int[] starts;
    public final int[] ends;
    public final int[] wordIds;

    TokenSpans(int[] ids, int[] starts, int[] ends, int[] wordIds) {
        this.ids = ids;
        this.starts = starts;
        this.ends = ends;
        this.wordIds = wordIds;
    }

    public int size() {
        return ids.length;
    }

    /** Tokens [from, to). */
    public TokenSpans slice(int from, int to) {
        return new TokenSpans(Arrays.copyOfRange(ids, from, to), Arrays.copyOfRange(starts, from, to),
                Arrays.copyOfRange(ends, from, to), Arrays.copyOfRange(wordIds, from, to));
    }

    static final class Builder {
        private int[] ids = new int[16];
        private int[] starts = new int[16];
        private int[] ends = new int[16];
        private int[] words = new int[16];
        private int size;

        void add(int id, int start, int end, int word) {
            if (size == ids.length) {
                ids = Arrays.copyOf(ids, size * 2);
                starts = Arrays.copyOf(starts, size * 2);
                ends = Arrays.copyOf(ends, size * 2);
                words = Arrays.copyOf(words, size * 2);
            }
            ids[size] = id;
            starts[size] = start;
            ends[size] = end;
            words[size++] = word;
        }

        TokenSpans build() {
            return new TokenSpans(Arrays.copyOf(ids, size), Arrays.copyOf(starts, size), Arrays.copyOf(ends, size),
                    Arrays.copyOf(words, size));
        }
    }
}
