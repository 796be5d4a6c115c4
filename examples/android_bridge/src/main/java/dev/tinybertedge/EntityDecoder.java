package dev.tinybertedge;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Token classification (NER) post-processing, as the SDK runtime does it ({@code TokenClassification.postprocess}
 * and {@code group_entities} in tinybert_edge/tasks/token_classification.py): each word takes the tag of its first
 * sub-token ("first" aggregation) with that token's softmax probability, and spans from its first to its last
 * token; words are grouped into entities from their IOB2 tags, conlleval's way (B-X begins an entity, I-X continues
 * one of type X and begins one after O or another type), an entity's score being the mean probability of its words.
 * Plain Java: the logits come from whatever ran the model.
 */
public final class EntityDecoder {
    /** An entity: its type (PER, LOC, ...), its span [start, end) in the text (UTF-16 indices), the text, its score. */
    public static final class Entity {
        public final String type;
        public final int start;
        public final int end;
        public final String text;
        public final double score;

        Entity(String type, int start, int end, String text, double score) {
            this.type = type;
            this.start = start;
            this.end = end;
            this.text = text;
            this.score = score;
        }

        @Override
        public String toString() {
            return type + "[" + start + "," + end + ")=" + Json.quote(text) + " " + score;
        }
    }

    /** A tagged word: its span in the text, its tag and the probability of that tag. */
    public static final class Word {
        public final int start;
        public final int end;
        public final String tag;
        public final double probability;

        public Word(int start, int end, String tag, double probability) {
            this.start = start;
            this.end = end;
            this.tag = tag;
            this.probability = probability;
        }
    }

    /** One text's result: its entities, every word's tag, and the number of tokens the model saw. */
    public static final class TaggedText {
        public final List<Entity> entities;
        public final List<Word> words;
        public final int tokens;

        TaggedText(List<Entity> entities, List<Word> words, int tokens) {
            this.entities = entities;
            this.words = words;
            this.tokens = tokens;
        }
    }

    private final List<String> labels;

    /** @param labels the bundle's IOB2 tags in output order (B-X, I-X or O). */
    public EntityDecoder(List<String> labels) {
        for (String label : labels) {
            if (!label.equals("O") && !label.matches("[BI]-.+")) {
                throw new IllegalArgumentException("the label \"" + label + "\" is not an IOB2 tag (O, B-X or I-X);"
                        + " a token classification bundle needs IOB2 labels: re-package it");
            }
        }
        this.labels = Collections.unmodifiableList(new ArrayList<>(labels));
    }

    /**
     * The entities of an encoded text ({@link WordPieceTokenizer#encodeWithOffsets}) from the model's logits
     * {@code [tokens][labels]}; rows past the encoding's length (padding) are ignored.
     */
    public TaggedText decode(OffsetEncoding encoding, float[][] logits) {
        if (logits.length < encoding.length()) {
            throw new IllegalArgumentException(logits.length + " rows of logits for " + encoding.length()
                    + " tokens; pass the model's output for this encoding");
        }
        List<Word> words = new ArrayList<>();
        for (int position = 0; position < encoding.length(); position++) {
            int word = encoding.wordIds[position];
            if (word < 0 || encoding.sequenceIds[position] != 0) {
                continue;
            }
            if (!words.isEmpty() && position > 0 && encoding.wordIds[position - 1] == word) {
                Word last = words.remove(words.size() - 1);  // a continuation extends the word
                words.add(new Word(last.start, encoding.ends[position], last.tag, last.probability));
                continue;
            }
            float[] row = logits[position];
            if (row.length != labels.size()) {
                throw new IllegalArgumentException("a row of " + row.length + " logits for " + labels.size()
                        + " labels; the model does not match the bundle's labels");
            }
            int best = argmax(row);
            words.add(new Word(encoding.starts[position], encoding.ends[position], labels.get(best),
                    softmaxAt(row, best)));
        }
        String text = encoding.texts.isEmpty() ? "" : encoding.texts.get(0);
        return new TaggedText(Collections.unmodifiableList(group(words, text)), Collections.unmodifiableList(words),
                encoding.length());
    }

    /** Entities from tagged words, conlleval's way (see the class comment). */
    public static List<Entity> group(List<Word> words, String text) {
        List<Entity> entities = new ArrayList<>();
        String type = null;
        int start = 0;
        int end = 0;
        List<Double> scores = new ArrayList<>();
        for (Word w : words) {
            if (w.tag.equals("O") || w.tag.length() < 3) {
                close(entities, type, start, end, scores, text);
                type = null;
                continue;
            }
            char prefix = w.tag.charAt(0);
            String kind = w.tag.substring(2);
            if (prefix == 'B' || type == null || !type.equals(kind)) {
                close(entities, type, start, end, scores, text);
                type = kind;
                start = w.start;
                end = w.end;
                scores = new ArrayList<>();
                scores.add(w.probability);
            } else {
                end = w.end;
                scores.add(w.probability);
            }
        }
        close(entities, type, start, end, scores, text);
        return entities;
    }

    private static void close(List<Entity> entities, String type, int start, int end, List<Double> scores,
                              String text) {
        if (type == null) {
            return;
        }
        double sum = 0;
        for (double s : scores) {
            sum += s;
        }
        entities.add(new Entity(type, start, end, text.substring(start, end), sum / scores.size()));
    }

    /** The first index of the largest value (numpy's argmax); NaN counts as the largest, as there. */
    static int argmax(float[] row) {
        int best = 0;
        for (int i = 0; i < row.length; i++) {
            if (Float.isNaN(row[i])) {
                return i;
            }
            if (row[i] > row[best]) {
                best = i;
            }
        }
        return best;
    }

    /** softmax(row)[index], computed in double as the SDK runtime does (exp(x - max) / sum). */
    static double softmaxAt(float[] row, int index) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : row) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (float v : row) {
            sum += Math.exp(v - max);
        }
        return Math.exp(row[index] - max) / sum;
    }
}
