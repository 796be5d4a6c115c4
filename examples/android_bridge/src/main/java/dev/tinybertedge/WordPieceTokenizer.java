package dev.tinybertedge;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * BERT tokenization exactly as Hugging Face's {@code BertTokenizerFast} does it: the BERT normalizer (clean text,
 * CJK spacing, NFD accent stripping, lower-casing), the BERT pre-tokenizer (split on whitespace, isolate
 * punctuation), greedy longest-match-first WordPiece with {@code [UNK]} for a word that does not split or is longer
 * than {@code maxInputCharsPerWord} code points, then {@code [CLS] ... [SEP]} with truncation.
 *
 * <p>Before all that, special tokens typed in the text ({@code [MASK]}, {@code [SEP]}, ...) are matched verbatim and
 * kept whole, as the fast tokenizer's added-token matching does. The character classes come from a
 * {@link UnicodeTables}: the bundle's {@code unicode_tables.txt} on a device.
 *
 * <p>Plain JVM code (java.base only). Everything works on Unicode code points, never on UTF-16 chars: a character
 * outside the BMP (an emoji, a CJK extension ideograph) is one character, as in Python and Rust. Single texts
 * ({@link #encode}) and sentence pairs ({@link #encodePair}, truncated longest first, as the SDK does) are encoded.
 */
public final class WordPieceTokenizer {
    /** Tokenizer settings, as the bundle manifest records them. */
    public static final class Settings {
        public final boolean lowercase;
        public final boolean stripAccents;
        public final boolean handleChineseChars;
        public final boolean cleanText;
        public final int maxInputCharsPerWord;
        public final String unkToken;
        public final String clsToken;
        public final String sepToken;
        public final String padToken;
        public final String continuingSubwordPrefix;
        /** Matched verbatim in the raw text before any normalization; each match is one token. */
        public final List<String> specialTokens;

        public Settings(boolean lowercase, boolean stripAccents, boolean handleChineseChars, boolean cleanText,
                        int maxInputCharsPerWord, String unkToken, String clsToken, String sepToken, String padToken,
                        String continuingSubwordPrefix, List<String> specialTokens) {
            if (maxInputCharsPerWord < 1) {
                throw new IllegalArgumentException("maxInputCharsPerWord = " + maxInputCharsPerWord
                        + " is not allowed; allowed: a positive number of characters (BERT uses 100)");
            }
            this.lowercase = lowercase;
            this.stripAccents = stripAccents;
            this.handleChineseChars = handleChineseChars;
            this.cleanText = cleanText;
            this.maxInputCharsPerWord = maxInputCharsPerWord;
            this.unkToken = requireNonEmpty("unkToken", unkToken);
            this.clsToken = requireNonEmpty("clsToken", clsToken);
            this.sepToken = requireNonEmpty("sepToken", sepToken);
            this.padToken = requireNonEmpty("padToken", padToken);
            this.continuingSubwordPrefix = continuingSubwordPrefix;
            for (String token : specialTokens) {
                requireNonEmpty("a special token", token);
            }
            this.specialTokens = Collections.unmodifiableList(new ArrayList<>(specialTokens));
        }

        /** bert-base-uncased: lower-case, strip accents, space CJK, clean text, 100 characters, ## pieces. */
        public static Settings uncased() {
            return new Settings(true, true, true, true, 100, "[UNK]", "[CLS]", "[SEP]", "[PAD]", "##",
                    Arrays.asList("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"));
        }

        private static String requireNonEmpty(String name, String value) {
            if (value == null || value.isEmpty()) {
                throw new IllegalArgumentException(name + " is empty; give the special token as written in vocab.txt");
            }
            return value;
        }
    }

    /** Model inputs for one text, padded to a fixed length. */
    public static final class Encoding {
        public final int[] inputIds;
        public final int[] attentionMask;
        public final int[] tokenTypeIds;
        /** Number of real tokens ([CLS] and [SEP] included) before the padding. */
        public final int length;

        Encoding(int[] inputIds, int[] attentionMask, int[] tokenTypeIds, int length) {
            this.inputIds = inputIds;
            this.attentionMask = attentionMask;
            this.tokenTypeIds = tokenTypeIds;
            this.length = length;
        }
    }

    private final Map<String, Integer> vocab;
    private final Settings settings;
    private final UnicodeTables unicode;
    /** Special tokens, longest first, so that the first one that matches at a position is the longest. */
    private final List<String> specialsLongestFirst;
    private final int unkId;
    private final int clsId;
    private final int sepId;
    private final int padId;
    /** Length in UTF-16 units of the longest vocabulary entry. */
    private final int maxTokenChars;

    public WordPieceTokenizer(Map<String, Integer> vocab, Settings settings, UnicodeTables unicode) {
        this.vocab = Collections.unmodifiableMap(new HashMap<>(vocab));
        this.settings = settings;
        this.unicode = unicode;
        List<String> specials = new ArrayList<>(settings.specialTokens);
        specials.sort((a, b) -> Integer.compare(b.length(), a.length()));
        this.specialsLongestFirst = specials;
        for (String token : specials) {
            specialId(token);
        }
        int longest = 0;
        for (String token : vocab.keySet()) {
            longest = Math.max(longest, token.length());
        }
        this.maxTokenChars = longest;
        this.unkId = specialId(settings.unkToken);
        this.clsId = specialId(settings.clsToken);
        this.sepId = specialId(settings.sepToken);
        this.padId = specialId(settings.padToken);
    }

    /** Read vocab.txt (strict UTF-8, one token a line, the line number is the id). */
    public static Map<String, Integer> readVocab(Path path) throws IOException {
        return parseVocab(Utf8.readFile(path));
    }

    /**
     * Parse vocab.txt text as the SDK's runtime does (docs/bundle_format.md): lines end with {@code \n}, the id is
     * the line number, trailing White_Space is trimmed from a token (Rust's {@code trim_end}, as {@code tokenizers}
     * reads a vocab file), and a token that appears twice keeps its last id.
     */
    public static Map<String, Integer> parseVocab(String text) {
        Map<String, Integer> vocab = new HashMap<>();
        UnicodeTables whiteSpace = UnicodeTables.jdk();  // its White_Space list is built in, not the JDK's data
        int start = 0;
        int id = 0;
        while (start < text.length()) {
            int end = text.indexOf('\n', start);
            if (end < 0) {
                end = text.length();
            }
            int trimmed = end;
            while (trimmed > start) {
                int cp = text.codePointBefore(trimmed);
                if (!whiteSpace.isWhitespace(cp)) {
                    break;
                }
                trimmed -= Character.charCount(cp);
            }
            vocab.put(text.substring(start, trimmed), id++);
            start = end + 1;
        }
        if (vocab.isEmpty()) {
            throw new IllegalArgumentException("vocab.txt is empty; it needs one token a line");
        }
        return vocab;
    }

    public Settings settings() {
        return settings;
    }

    public int padId() {
        return padId;
    }

    /** Token id, or the [UNK] id when the token is not in the vocabulary. */
    public int tokenToId(String token) {
        Integer id = vocab.get(token);
        return id == null ? unkId : id;
    }

    /** The BERT normalizer: clean text, space CJK characters, strip accents (NFD, drop marks), lower-case. */
    public String normalize(String text) {
        checkWellFormed(text);
        StringBuilder out = new StringBuilder(text.length() + 8);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (settings.cleanText) {
                if (cp == 0 || cp == 0xFFFD || unicode.isControl(cp)) {
                    continue;
                }
                if (unicode.isWhitespace(cp)) {
                    cp = ' ';
                }
            }
            if (settings.handleChineseChars && unicode.isChineseChar(cp)) {
                out.append(' ').appendCodePoint(cp).append(' ');
            } else {
                out.appendCodePoint(cp);
            }
        }
        String normalized = out.toString();
        // The fast tokenizer strips accents before it lower-cases (Python's slow tokenizer does the opposite).
        if (settings.stripAccents) {
            normalized = stripAccents(normalized);
        }
        if (settings.lowercase) {
            normalized = lowerCase(normalized);
        }
        return normalized;
    }

    /** The BERT pre-tokenizer: split on whitespace (dropped) and make each punctuation character its own word. */
    public List<String> preTokenize(String normalized) {
        List<String> words = new ArrayList<>();
        int wordStart = -1;
        for (int i = 0; i < normalized.length(); ) {
            int cp = normalized.codePointAt(i);
            int next = i + Character.charCount(cp);
            if (unicode.isWhitespace(cp)) {
                if (wordStart >= 0) {
                    words.add(normalized.substring(wordStart, i));
                    wordStart = -1;
                }
            } else if (unicode.isPunctuation(cp)) {
                if (wordStart >= 0) {
                    words.add(normalized.substring(wordStart, i));
                    wordStart = -1;
                }
                words.add(normalized.substring(i, next));
            } else if (wordStart < 0) {
                wordStart = i;
            }
            i = next;
        }
        if (wordStart >= 0) {
            words.add(normalized.substring(wordStart));
        }
        return words;
    }

    /**
     * WordPiece for one pre-tokenized word: the longest vocabulary entry from the left, then "##" pieces; the whole
     * word is [UNK] when some position matches nothing or the word has more than maxInputCharsPerWord code points.
     */
    public List<String> wordPiece(String word) {
        if (word.codePointCount(0, word.length()) > settings.maxInputCharsPerWord) {
            return Collections.singletonList(settings.unkToken);
        }
        List<String> pieces = new ArrayList<>();
        int start = 0;
        while (start < word.length()) {
            // No vocabulary entry is longer than maxTokenChars, so longer candidates are skipped unexamined.
            int end = word.length();
            int room = maxTokenChars - (start > 0 ? settings.continuingSubwordPrefix.length() : 0);
            if (end - start > room) {
                end = Math.max(start, start + room);
                if (end > start && Character.isLowSurrogate(word.charAt(end))
                        && Character.isHighSurrogate(word.charAt(end - 1))) {
                    end--;  // do not cut a surrogate pair
                }
            }
            String match = null;
            while (start < end) {
                String candidate = word.substring(start, end);
                if (start > 0) {
                    candidate = settings.continuingSubwordPrefix + candidate;
                }
                if (vocab.containsKey(candidate)) {
                    match = candidate;
                    break;
                }
                end = word.offsetByCodePoints(end, -1);
            }
            if (match == null) {
                return Collections.singletonList(settings.unkToken);
            }
            pieces.add(match);
            start = end;
        }
        return pieces;
    }

    public UnicodeTables unicodeTables() {
        return unicode;
    }

    /**
     * Tokens of a text, without [CLS]/[SEP] or truncation: special tokens typed in the text (leftmost, longest
     * first, matched before any normalization) are kept whole; the text between them is normalized, pre-tokenized
     * and split into word pieces.
     */
    public List<String> tokenize(String text) {
        checkWellFormed(text);
        List<String> tokens = new ArrayList<>();
        int segmentStart = 0;
        int i = 0;
        while (i < text.length()) {
            String special = specialAt(text, i);
            if (special == null) {
                i++;
                continue;
            }
            addWordPieces(text.substring(segmentStart, i), tokens);
            tokens.add(special);
            i += special.length();
            segmentStart = i;
        }
        addWordPieces(text.substring(segmentStart), tokens);
        return tokens;
    }

    private String specialAt(String text, int at) {
        for (String token : specialsLongestFirst) {
            if (text.startsWith(token, at)) {
                return token;
            }
        }
        return null;
    }

    private void addWordPieces(String segment, List<String> tokens) {
        if (segment.isEmpty()) {
            return;
        }
        for (String word : preTokenize(normalize(segment))) {
            tokens.addAll(wordPiece(word));
        }
    }

    /**
     * Token ids of {@code [CLS] text [SEP]}, the word pieces truncated so that the whole is at most
     * {@code maxLength} ids (Hugging Face's {@code truncation=True, max_length=maxLength}).
     */
    public int[] encode(String text, int maxLength) {
        if (maxLength < 2) {
            throw new IllegalArgumentException("maxLength = " + maxLength
                    + " is not allowed; allowed: at least 2 (room for [CLS] and [SEP])");
        }
        List<String> tokens = tokenize(text);
        int kept = Math.min(tokens.size(), maxLength - 2);
        int[] ids = new int[kept + 2];
        ids[0] = clsId;
        for (int i = 0; i < kept; i++) {
            ids[i + 1] = tokenToId(tokens.get(i));
        }
        ids[kept + 1] = sepId;
        return ids;
    }

    /**
     * [CLS] text [SEP] pair [SEP] for a sentence-pair model (GLUE's MRPC, RTE, STS-B), with token type 0 for the
     * first part and 1 for the second, truncated to {@code maxLength} ids the way Hugging Face's fast tokenizer
     * truncates a pair (longest first) and the SDK's runtime does. An empty pair is no pair, as there.
     */
    public Encoding encodePair(String text, String pair, int maxLength) {
        if (pair == null || pair.isEmpty()) {
            int[] ids = encode(text, maxLength);
            return pad(ids, ids.length);
        }
        if (maxLength < 3) {
            throw new IllegalArgumentException("maxLength = " + maxLength
                    + " is not allowed for a pair; allowed: at least 3 ([CLS] and two [SEP])");
        }
        List<String> first = tokenize(text);
        List<String> second = tokenize(pair);
        int[] kept = longestFirst(first.size(), second.size(), maxLength - 3);
        int length = kept[0] + kept[1] + 3;
        int[] ids = new int[length];
        int[] types = new int[length];
        int at = 0;
        ids[at++] = clsId;
        for (int i = 0; i < kept[0]; i++) {
            ids[at++] = tokenToId(first.get(i));
        }
        ids[at++] = sepId;
        for (int i = 0; i < kept[1]; i++) {
            types[at] = 1;
            ids[at++] = tokenToId(second.get(i));
        }
        types[at] = 1;
        ids[at] = sepId;
        int[] mask = new int[length];
        Arrays.fill(mask, 1);
        return new Encoding(ids, mask, types, length);
    }

    /** Token counts kept from a pair of n1 and n2 tokens under {@code budget}: tokenizers' LongestFirst strategy. */
    static int[] longestFirst(int n1, int n2, int budget) {
        if (n1 + n2 <= budget) {
            return new int[] {n1, n2};
        }
        boolean swap = n1 > n2;
        int shorter = swap ? n2 : n1;
        int longer = shorter > budget ? shorter : Math.max(shorter, budget - shorter);
        if (shorter + longer > budget) {
            shorter = budget / 2;
            longer = shorter + budget % 2;
        }
        return swap ? new int[] {longer, shorter} : new int[] {shorter, longer};
    }

    /** An encoding (of a text or a pair) padded with [PAD] to exactly {@code length} positions. */
    public Encoding pad(Encoding encoding, int length) {
        if (encoding.length > length) {
            throw new IllegalArgumentException(encoding.length + " ids do not fit in " + length + " positions");
        }
        int[] inputIds = Arrays.copyOf(Arrays.copyOf(encoding.inputIds, encoding.length), length);
        Arrays.fill(inputIds, encoding.length, length, padId);
        int[] mask = new int[length];
        Arrays.fill(mask, 0, encoding.length, 1);
        int[] types = Arrays.copyOf(Arrays.copyOf(encoding.tokenTypeIds, encoding.length), length);
        return new Encoding(inputIds, mask, types, encoding.length);
    }

    /** {@link #encode} padded with [PAD] to exactly {@code length} positions, with its attention mask. */
    public Encoding encodePadded(String text, int length) {
        return pad(encode(text, length), length);
    }

    /** Ids from {@link #encode} padded with [PAD] to {@code length} positions, with the attention mask. */
    public Encoding pad(int[] ids, int length) {
        if (ids.length > length) {
            throw new IllegalArgumentException(ids.length + " ids do not fit in " + length
                    + " positions; encode with maxLength <= length");
        }
        int[] inputIds = Arrays.copyOf(ids, length);
        Arrays.fill(inputIds, ids.length, length, padId);
        int[] mask = new int[length];
        Arrays.fill(mask, 0, ids.length, 1);
        return new Encoding(inputIds, mask, new int[length], ids.length);
    }

    private String stripAccents(String text) {
        String decomposed = unicode.nfd(text);
        StringBuilder out = new StringBuilder(decomposed.length());
        for (int i = 0; i < decomposed.length(); ) {
            int cp = decomposed.codePointAt(i);
            i += Character.charCount(cp);
            if (!unicode.isMark(cp)) {
                out.appendCodePoint(cp);
            }
        }
        return out.toString();
    }

    private String lowerCase(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            unicode.appendLowerCase(cp, out);
        }
        return out.toString();
    }

    // --- character offsets ----------------------------------------------------------------------------------------

    /**
     * The tokens of a text (as {@link #tokenize}, without [CLS]/[SEP] or truncation) with each token's span in
     * {@code text} and the index of its word, as Hugging Face's fast tokenizer and the SDK's runtime report them
     * ({@code WordPieceTokenizer.tokens_with_offsets} in tinybert_edge/runtime/wordpiece.py): a token spans the
     * original characters its first and last normalized characters came from; a special token typed in the text is
     * a word of its own. Spans are UTF-16 indices into {@code text} ({@code text.substring(starts[i], ends[i])});
     * the Python runtime counts code points, which {@link OffsetEncoding#codePointOffsets} converts to.
     */
    public TokenSpans tokensWithOffsets(String text) {
        checkWellFormed(text);
        TokenSpans.Builder out = new TokenSpans.Builder();
        int segmentStart = 0;
        int i = 0;
        int[] word = {0};
        while (i < text.length()) {
            String special = specialAt(text, i);
            if (special == null) {
                i++;
                continue;
            }
            addSpans(text, segmentStart, i, out, word);
            out.add(tokenToId(special), i, i + special.length(), word[0]++);
            i += special.length();
            segmentStart = i;
        }
        addSpans(text, segmentStart, text.length(), out, word);
        return out.build();
    }

    /** Word pieces of text[from, to) with their spans in {@code text}; {@code word[0]} counts the words. */
    private void addSpans(String text, int from, int to, TokenSpans.Builder out, int[] word) {
        if (from >= to) {
            return;
        }
        int[][] normalized = normalizeWithOrigins(text, from, to);
        int[] cps = normalized[0];
        int[] origins = normalized[1];
        int n = cps.length;
        int at = 0;
        while (at < n) {
            int cp = cps[at];
            if (unicode.isWhitespace(cp)) {
                at++;
                continue;
            }
            int end = at + 1;
            if (!unicode.isPunctuation(cp)) {
                while (end < n && !unicode.isWhitespace(cps[end]) && !unicode.isPunctuation(cps[end])) {
                    end++;
                }
            }
            String w = new String(cps, at, end - at);
            List<String> pieces = wordPiece(w);
            if (pieces.size() == 1 && pieces.get(0).equals(settings.unkToken) && !vocab.containsKey(w)) {
                out.add(unkId, origins[at], originEnd(text, origins[end - 1]), word[0]);
            } else {
                int start = at;
                int prefix = settings.continuingSubwordPrefix.codePointCount(0,
                        settings.continuingSubwordPrefix.length());
                for (int p = 0; p < pieces.size(); p++) {
                    String piece = pieces.get(p);
                    int length = piece.codePointCount(0, piece.length()) - (p > 0 ? prefix : 0);
                    out.add(tokenToId(piece), origins[start], originEnd(text, origins[start + length - 1]), word[0]);
                    start += length;
                }
            }
            word[0]++;
            at = end;
        }
    }

    private static int originEnd(String text, int origin) {
        return origin + Character.charCount(text.codePointAt(origin));
    }

    /**
     * {@link #normalize} of text[from, to) as code points, and for each the UTF-16 index in {@code text} of the
     * character it came from (normalization only drops, expands and reorders characters, so each has one origin).
     * The same steps as the Python runtime's {@code normalize_with_origins}.
     */
    int[][] normalizeWithOrigins(String text, int from, int to) {
        IntPairs chars = new IntPairs(to - from + 8);
        for (int i = from; i < to; ) {
            int cp = text.codePointAt(i);
            int origin = i;
            i += Character.charCount(cp);
            if (settings.cleanText) {
                if (cp == 0 || cp == 0xFFFD || unicode.isControl(cp)) {
                    continue;
                }
                if (unicode.isWhitespace(cp)) {
                    cp = ' ';
                }
            }
            if (settings.handleChineseChars && unicode.isChineseChar(cp)) {
                chars.add(' ', origin);
                chars.add(cp, origin);
                chars.add(' ', origin);
            } else {
                chars.add(cp, origin);
            }
        }
        if (settings.stripAccents) {
            chars = stripAccentsWithOrigins(chars);
        }
        if (settings.lowercase) {
            IntPairs lowered = new IntPairs(chars.size + 8);
            StringBuilder one = new StringBuilder(4);
            for (int k = 0; k < chars.size; k++) {
                one.setLength(0);
                unicode.appendLowerCase(chars.cps[k], one);
                for (int j = 0; j < one.length(); ) {
                    int c = one.codePointAt(j);
                    j += Character.charCount(c);
                    lowered.add(c, chars.origins[k]);
                }
            }
            chars = lowered;
        }
        return new int[][] {Arrays.copyOf(chars.cps, chars.size), Arrays.copyOf(chars.origins, chars.size)};
    }

    /**
     * NFD with canonical ordering, then marks dropped, keeping each character's origin. Each code point is decomposed
     * on its own; the canonical ordering of the whole sequence is then taken from {@link UnicodeTables#nfd} (on an
     * already decomposed text it only reorders), and origins follow their characters: a stable sort keeps equal
     * code points in their order, so the k-th occurrence of a code point after it is the k-th before it.
     */
    private IntPairs stripAccentsWithOrigins(IntPairs chars) {
        IntPairs decomposed = new IntPairs(chars.size + 8);
        StringBuilder all = new StringBuilder(chars.size + 8);
        for (int k = 0; k < chars.size; k++) {
            int cp = chars.cps[k];
            if (cp < 0x80) {
                decomposed.add(cp, chars.origins[k]);
                all.append((char) cp);
                continue;
            }
            String d = unicode.nfd(new String(Character.toChars(cp)));
            all.append(d);
            for (int j = 0; j < d.length(); ) {
                int c = d.codePointAt(j);
                j += Character.charCount(c);
                decomposed.add(c, chars.origins[k]);
            }
        }
        String concatenated = all.toString();
        String ordered = unicode.nfd(concatenated);
        IntPairs result = new IntPairs(decomposed.size);
        if (ordered.equals(concatenated)) {
            result = decomposed;
        } else {
            Map<Integer, java.util.ArrayDeque<Integer>> positions = new HashMap<>();
            for (int k = 0; k < decomposed.size; k++) {
                positions.computeIfAbsent(decomposed.cps[k], c -> new java.util.ArrayDeque<>()).add(k);
            }
            for (int j = 0; j < ordered.length(); ) {
                int c = ordered.codePointAt(j);
                j += Character.charCount(c);
                java.util.ArrayDeque<Integer> queue = positions.get(c);
                if (queue == null || queue.isEmpty()) {
                    throw new IllegalStateException("canonical ordering changed the characters of the text (U+"
                            + Integer.toHexString(c).toUpperCase() + "); the Unicode tables are inconsistent");
                }
                result.add(c, decomposed.origins[queue.poll()]);
            }
        }
        IntPairs kept = new IntPairs(result.size);
        for (int k = 0; k < result.size; k++) {
            if (!unicode.isMark(result.cps[k])) {
                kept.add(result.cps[k], result.origins[k]);
            }
        }
        return kept;
    }

    /** A growable list of (code point, origin) pairs. */
    private static final class IntPairs {
        int[] cps;
        int[] origins;
        int size;

        IntPairs(int capacity) {
            cps = new int[Math.max(capacity, 4)];
            origins = new int[cps.length];
        }

        void add(int cp, int origin) {
            if (size == cps.length) {
                cps = Arrays.copyOf(cps, size * 2);
                origins = Arrays.copyOf(origins, size * 2);
            }
            cps[size] = cp;
            origins[size++] = origin;
        }
    }

    /**
     * {@code [CLS] text [SEP]} truncated to {@code maxLength} ids, with each token's span, sequence and word
     * (the SDK runtime's {@code encode(text, offsets=True)}; token classification encodes this way).
     */
    public OffsetEncoding encodeWithOffsets(String text, int maxLength) {
        if (maxLength < 2) {
            throw new IllegalArgumentException("maxLength = " + maxLength
                    + " is not allowed; allowed: at least 2 (room for [CLS] and [SEP])");
        }
        TokenSpans spans = tokensWithOffsets(text);
        return OffsetEncoding.assemble(clsId, sepId, new String[] {text},
                new TokenSpans[] {spans.slice(0, Math.min(spans.size(), maxLength - 2))});
    }

    /**
     * {@code [CLS] question [SEP] window [SEP]} for each window over {@code context}, with offsets: what Hugging Face's
     * fast tokenizer gives with {@code truncation="only_second"}, {@code stride} and
     * {@code return_overflowing_tokens}, and the SDK runtime's {@code encode_windows}. A window holds up to
     * {@code maxLength - questionTokens - 3} context tokens, and consecutive windows overlap by {@code stride}
     * tokens. Fails when the question leaves no more than {@code stride} tokens for the context.
     */
    public List<OffsetEncoding> encodeWindows(String question, String context, int maxLength, int stride) {
        if (stride < 1) {
            throw new IllegalArgumentException("stride = " + stride + " is not allowed; allowed: at least 1");
        }
        TokenSpans q = tokensWithOffsets(question);
        TokenSpans c = tokensWithOffsets(context);
        int room = maxLength - q.size() - 3;
        if (room <= stride) {
            throw new IllegalArgumentException("the question has " + q.size() + " tokens, which leaves "
                    + Math.max(room, 0) + " of the " + maxLength + " for the context, not more than the document"
                    + " stride (" + stride + "); shorten the question or raise max_length");
        }
        int step = room - stride;
        List<OffsetEncoding> windows = new ArrayList<>();
        int start = 0;
        while (true) {
            int stop = Math.min(start + room, c.size());
            windows.add(OffsetEncoding.assemble(clsId, sepId, new String[] {question, context},
                    new TokenSpans[] {q, c.slice(start, stop)}));
            if (stop >= c.size()) {
                return windows;
            }
            start += step;
        }
    }

    /**
     * The document stride used at {@code maxLength}: the manifest's {@code doc_stride}, at most a third of the
     * sequence (the SDK's {@code effective_stride}).
     */
    public static int effectiveStride(int docStride, int maxLength) {
        return Math.max(1, Math.min(docStride, maxLength / 3));
    }

    /** A Java String can hold a lone UTF-16 surrogate, which is no Unicode text; refuse it rather than guess. */
    private static void checkWellFormed(String text) {
        if (text == null) {
            throw new IllegalArgumentException("text is null; pass a String (an empty one is fine)");
        }
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new IllegalArgumentException("text holds a lone UTF-16 surrogate (U+"
                        + Integer.toHexString(c).toUpperCase() + ") at index " + i
                        + "; it is not valid Unicode: decode the input bytes as strict UTF-8 before tokenizing");
            }
        }
    }

    private int specialId(String token) {
        Integer id = vocab.get(token);
        if (id == null) {
            throw new IllegalArgumentException("the special token " + token
                    + " is not in vocab.txt; use the vocab.txt the model was trained with");
        }
        return id;
    }
}
