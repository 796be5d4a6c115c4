package dev.tinybertedge;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Hand-checked cases for the tokenizer on a tiny vocabulary, run with every UnicodeTables source given. */
final class TokenizerTests {
    private TokenizerTests() {}

    static final List<String> VOCAB = Arrays.asList(
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "[", "]", "mask", "un", "##aff",
            "##able", "cafe", "中", "文", "σ", "##σ", "i", "a", "##a", "\uD83D\uDE00", "##\uD83D\uDE00", "x", "##x");

    static List<Integer> boxed(int[] values) {
        List<Integer> out = new java.util.ArrayList<>();
        for (int v : values) {
            out.add(v);
        }
        return out;
    }

    static Map<String, Integer> vocab() {
        Map<String, Integer> vocab = new HashMap<>();
        for (String token : VOCAB) {
            vocab.put(token, vocab.size());
        }
        return vocab;
    }

    static void run(UnicodeTables unicode) {
        String tag = " [" + unicode.describe() + "]";
        WordPieceTokenizer tok = new WordPieceTokenizer(vocab(), WordPieceTokenizer.Settings.uncased(), unicode);

        Check.test("a sentence pair: [CLS] a [SEP] b [SEP], token types 0 then 1" + tag, () -> {
            WordPieceTokenizer.Encoding e = tok.encodePair("hello world", "unaffable!", 32);
            Check.equal(List.of(2, 5, 6, 3, 12, 13, 14, 8, 3), boxed(e.inputIds), "ids");
            Check.equal(List.of(0, 0, 0, 0, 1, 1, 1, 1, 1), boxed(e.tokenTypeIds), "token types");
            Check.equal(9, e.length, "length");
            WordPieceTokenizer.Encoding padded = tok.pad(e, 12);
            Check.equal(List.of(0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0), boxed(padded.tokenTypeIds), "padded types");
            Check.equal(List.of(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0), boxed(padded.attentionMask), "padded mask");
            Check.equal(List.of(2, 5, 3), boxed(tok.encodePair("hello", "", 32).inputIds), "an empty pair is no pair");
        });
        Check.test("a pair is truncated longest first, as Hugging Face's fast tokenizer does" + tag, () -> {
            // 4 + 2 tokens under a budget of 5: the longer text loses tokens first. The expected counts are what the
            // SDK's runtime (tinybert_edge.runtime.wordpiece._longest_first, checked against Hugging Face) gives.
            WordPieceTokenizer.Encoding e = tok.encodePair("hello world hello world", "x x", 8);
            Check.equal(List.of(2, 5, 6, 5, 3, 25, 25, 3), boxed(e.inputIds), "longer truncated");
            Check.equal(List.of(2, 3), boxed(WordPieceTokenizer.longestFirst(3, 4, 5)), "budget 5: 2 + 3");
            Check.equal(List.of(2, 3), boxed(WordPieceTokenizer.longestFirst(10, 10, 5)), "budget 5: 2 + 3");
            Check.equal(List.of(2, 3), boxed(WordPieceTokenizer.longestFirst(2, 10, 5)), "budget 5: 2 + 3");
            Check.equal(List.of(4, 1), boxed(WordPieceTokenizer.longestFirst(9, 1, 5)), "budget 5: 4 + 1");
        });
        Check.test("character offsets: accents, CJK, emoji, [UNK] words and typed special tokens" + tag, () -> {
            // "Café" has one accented character; 中 is spaced; the emoji is two UTF-16 units; "zzz" is [UNK]
            String text = "Hello, CAFÉ 中文 \uD83D\uDE00\uD83D\uDE00 zzz[MASK]!";
            TokenSpans s = tok.tokensWithOffsets(text);
            Check.equal(List.of(5, 7, 15, 16, 17, 23, 24, 1, 4, 8), boxed(s.ids), "ids");
            Check.equal(boxed(tok.tokenize(text).stream().mapToInt(tok::tokenToId).toArray()), boxed(s.ids),
                    "the same ids as tokenize()");
            Check.equal(List.of(0, 5, 7, 12, 13, 15, 17, 20, 23, 29), boxed(s.starts), "starts (UTF-16)");
            Check.equal(List.of(5, 6, 11, 13, 14, 17, 19, 23, 29, 30), boxed(s.ends), "ends (UTF-16)");
            Check.equal(List.of(0, 1, 2, 3, 4, 5, 5, 6, 7, 8), boxed(s.wordIds), "word ids");
            Check.equal("CAFÉ", text.substring(s.starts[2], s.ends[2]), "a span is the original text");
            OffsetEncoding e = tok.encodeWithOffsets(text, 5);
            Check.equal(List.of(2, 5, 7, 15, 3), boxed(e.inputIds), "truncated with [CLS]/[SEP]");
            Check.equal(List.of(-1, 0, 0, 0, -1), boxed(e.sequenceIds), "sequence ids");
            int[][] cp = tok.encodeWithOffsets(text, 32).codePointOffsets();
            Check.equal(List.of(16, 17), boxed(cp[7]), "the second emoji in code points");
        });
        Check.test("question + context windows overlap by the stride" + tag, () -> {
            // 10 context tokens, 2 question tokens, max_length 10: room 5, stride 2, windows start 3 apart
            List<OffsetEncoding> w = tok.encodeWindows("hello world", "x x x x x x x x x a", 10, 2);
            Check.equal(3, w.size(), "windows");
            Check.equal(List.of(2, 5, 6, 3, 25, 25, 25, 25, 25, 3), boxed(w.get(0).inputIds), "first window");
            Check.equal(List.of(6, 8, 10, 12, 14), boxed(java.util.Arrays.copyOfRange(w.get(1).starts, 4, 9)),
                    "second window starts at the fourth context token");
            Check.equal(List.of(2, 5, 6, 3, 25, 25, 25, 21, 3), boxed(w.get(2).inputIds), "last window");
            Check.fails(IllegalArgumentException.class, "not more than the document stride",
                    () -> tok.encodeWindows("hello world hello world", "x", 8, 2));
            Check.equal(21, WordPieceTokenizer.effectiveStride(128, 64), "a third of 64");
            Check.equal(128, WordPieceTokenizer.effectiveStride(128, 384), "the manifest's 128 at 384");
        });
        Check.test("entities: B- begins, I- continues its type, I- after O or another type begins one" + tag, () -> {
            List<EntityDecoder.Word> words = List.of(new EntityDecoder.Word(0, 3, "B-PER", 0.9),
                    new EntityDecoder.Word(4, 7, "I-PER", 0.7), new EntityDecoder.Word(8, 9, "O", 0.99),
                    new EntityDecoder.Word(10, 12, "I-LOC", 0.5), new EntityDecoder.Word(13, 15, "I-PER", 0.6),
                    new EntityDecoder.Word(16, 18, "B-PER", 0.8));
            List<EntityDecoder.Entity> e = EntityDecoder.group(words, "Ada Lov a in NY Al Bo");
            Check.equal(4, e.size(), "entities");
            Check.equal("PER Ada Lov 0 7", e.get(0).type + " " + e.get(0).text + " " + e.get(0).start + " "
                    + e.get(0).end, "two words, one entity");
            Check.isTrue(Math.abs(e.get(0).score - 0.8) < 1e-12, "mean probability");
            Check.equal("LOC", e.get(1).type, "I- after O begins");
            Check.equal("PER", e.get(2).type, "I- of another type begins");
            Check.equal("PER", e.get(3).type, "B- after the same type begins");
            Check.fails(IllegalArgumentException.class, "not an IOB2 tag",
                    () -> new EntityDecoder(List.of("O", "PER")));
        });
        Check.test("answers: inside the context, end >= start, at most max_answer_length tokens" + tag, () -> {
            List<OffsetEncoding> w = tok.encodeWindows("hello", "world x a", 16, 2);
            // [CLS] hello [SEP] world x a [SEP]: the best start/end pair overall is in the question, then end < start
            float[] starts = {0, 9, 0, 1, 5, 2, 0};
            float[] ends = {0, 9, 0, 4, 1, 3, 0};
            Check.equal("x a", new AnswerDecoder(20, 30).decode(w, List.of(starts), List.of(ends)).text,
                    "start 'x', end 'a'");
            Check.equal("x", new AnswerDecoder(20, 1).decode(w, List.of(starts), List.of(ends)).text,
                    "one token at most");
            AnswerDecoder.Answer none = new AnswerDecoder(1, 1).decode(w, List.of(new float[] {0, 0, 0, 0, 0, 9, 0}),
                    List.of(new float[] {0, 0, 0, 9, 0, 0, 0}));
            Check.equal("", none.text, "no candidate: the empty answer");
            Check.isTrue(none.score == Double.NEGATIVE_INFINITY, "score -infinity");
        });
        Check.test("punctuation and lower-casing" + tag, () ->
                Check.equal(List.of("hello", ",", "world", "!"), tok.tokenize("Hello, WORLD!"), "tokens"));
        Check.test("word pieces, longest match first" + tag, () ->
                Check.equal(List.of("un", "##aff", "##able"), tok.tokenize("unaffable"), "tokens"));
        Check.test("a word that does not split is one [UNK]" + tag, () ->
                Check.equal(List.of("[UNK]", "hello"), tok.tokenize("unaffablez hello"), "tokens"));
        Check.test("accents stripped after NFD" + tag, () -> {
            Check.equal(List.of("cafe"), tok.tokenize("Café"), "precomposed");
            Check.equal(List.of("cafe"), tok.tokenize("Cafe\u0301"), "combining");
            Check.equal(List.of("i"), tok.tokenize("\u0130"), "capital I with dot: stripped before lower-casing");
        });
        Check.test("CJK ideographs are split" + tag, () ->
                Check.equal(List.of("中", "文", "hello"), tok.tokenize("中文hello"), "tokens"));
        Check.test("capital sigma lower-cases without final form" + tag, () ->
                Check.equal(List.of("σ", "##σ"), tok.tokenize("ΣΣ"), "tokens"));
        Check.test("control and zero-width characters dropped, odd spaces split" + tag, () -> {
            Check.equal(List.of("hello"), tok.tokenize("hel\u0000lo\u200b\uFFFD"), "dropped");
            Check.equal(List.of("hello", "world", "!"), tok.tokenize("hello\u3000world\u00a0\u2029!\t"), "spaces");
            Check.equal(List.of(), tok.tokenize(" \u0001\u200d\n"), "nothing left");
        });
        Check.test("astral characters are one character each" + tag, () -> {
            Check.equal(List.of("\uD83D\uDE00", "##\uD83D\uDE00"), tok.tokenize("\uD83D\uDE00\uD83D\uDE00"), "pieces");
            Check.equal(List.of("x", "##\uD83D\uDE00"), tok.tokenize("x\uD83D\uDE00"), "after a letter");
            String hundred = "\uD83D\uDE00".repeat(100);
            Check.equal(100, tok.tokenize(hundred).size(), "100 emoji (200 UTF-16 units) are within the limit");
            Check.equal(List.of("[UNK]"), tok.tokenize(hundred + "\uD83D\uDE00"), "101 emoji are over it");
        });
        Check.test("words over 100 characters are [UNK]" + tag, () -> {
            Check.equal(100, tok.tokenize("a".repeat(100)).size(), "100 characters split");
            Check.equal(List.of("[UNK]"), tok.tokenize("a".repeat(101)), "101 characters");
        });
        Check.test("special tokens typed in the text are kept whole" + tag, () -> {
            Check.equal(List.of("hello", "[MASK]", "world"), tok.tokenize("hello[MASK]world"), "matched");
            Check.equal(List.of("[", "mask", "]"), tok.tokenize("[mask]"), "lower case is not special");
            Check.equal(List.of("[SEP]", "[SEP]"), tok.tokenize("[SEP][SEP]"), "adjacent");
        });
        Check.test("[CLS]/[SEP] and truncation" + tag, () -> {
            Check.equal(new int[] {2, 5, 7, 6, 8, 3}, tok.encode("hello, world!", 128), "full");
            Check.equal(new int[] {2, 5, 7, 3}, tok.encode("hello, world!", 4), "truncated to 4");
            Check.equal(new int[] {2, 3}, tok.encode("", 8), "empty text");
            Check.fails(IllegalArgumentException.class, "at least 2", () -> tok.encode("x", 1));
        });
        Check.test("padding to a bucket" + tag, () -> {
            WordPieceTokenizer.Encoding e = tok.encodePadded("hello world", 6);
            Check.equal(new int[] {2, 5, 6, 3, 0, 0}, e.inputIds, "ids");
            Check.equal(new int[] {1, 1, 1, 1, 0, 0}, e.attentionMask, "mask");
            Check.equal(new int[6], e.tokenTypeIds, "token types");
            Check.equal(4, e.length, "length");
        });
        Check.test("a lone surrogate is refused, not tokenized" + tag, () -> {
            Check.fails(IllegalArgumentException.class, "lone UTF-16 surrogate", () -> tok.tokenize("ab\uD83D"));
            Check.fails(IllegalArgumentException.class, "lone UTF-16 surrogate", () -> tok.tokenize("\uDE00x"));
            Check.fails(IllegalArgumentException.class, "null", () -> tok.tokenize(null));
        });
        Check.test("a huge text is tokenized and truncated" + tag, () -> {
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < 200_000; i++) {
                text.append(i % 3 == 0 ? "hello " : i % 3 == 1 ? "e\u0301\u0323 " : "\u0300\u0301\u0302\u0303");
            }
            int[] ids = tok.encode(text.toString(), 128);
            Check.equal(128, ids.length, "truncated length");
            Check.equal(5, ids[1], "first token");
        });
        Check.test("settings without lower-casing keep case and accents" + tag, () -> {
            WordPieceTokenizer.Settings cased = new WordPieceTokenizer.Settings(false, false, true, true, 100,
                    "[UNK]", "[CLS]", "[SEP]", "[PAD]", "##", List.of());
            Map<String, Integer> v = vocab();
            v.put("Café", v.size());
            WordPieceTokenizer t = new WordPieceTokenizer(v, cased, unicode);
            Check.equal(List.of("[UNK]", "[UNK]"), t.tokenize("Hello Cafe\u0301"), "NFD only when stripping");
            Check.equal(List.of("Café"), t.tokenize("Café"), "precomposed kept");
            Check.equal(List.of("[", "[UNK]", "]"), t.tokenize("[MASK]"), "no special tokens configured");
        });
        Check.test("vocab.txt parsing" + tag, () -> {
            Map<String, Integer> v = WordPieceTokenizer.parseVocab("[PAD]\n[UNK]\n a\nb \u00a0\r\nc\nb\n\n");
            Check.equal(0, v.get("[PAD]"), "first id");
            Check.equal(2, v.get(" a"), "leading space kept");
            Check.equal(5, v.get("b"), "trailing White_Space trimmed; a repeated token keeps its last id");
            Check.equal(4, v.get("c"), "id is the line number");
            Check.equal(6, v.get(""), "an empty line is a token");
            Check.equal(6, v.size(), "distinct tokens; the newline that ends the file starts no line");
            Check.fails(IllegalArgumentException.class, "empty", () -> WordPieceTokenizer.parseVocab(""));
            Check.fails(IllegalArgumentException.class, "is not in vocab.txt", () -> new WordPieceTokenizer(
                    WordPieceTokenizer.parseVocab("[PAD]\n[UNK]\n"), WordPieceTokenizer.Settings.uncased(), unicode));
        });
    }

    /** Parsing and behaviour of unicode_tables.txt itself, on a small hand-written table. */
    static void runTableFormat() {
        String header = "# tinybert-edge unicode tables v1 reference=test\n";
        Check.test("unicode_tables.txt: NFD expansion, Hangul, canonical reordering", () -> {
            UnicodeTables t = UnicodeTables.parse(header + "mark 0300 036F\nccc 0300 0301 230\nccc 0323 0323 220\n"
                    + "nfd 00E9 0065 0301\nlower 0130 0069 0307\n", "test");
            Check.equal("e\u0323\u0301", t.nfd("\u00e9\u0323"), "é + dot below reordered by class");
            Check.equal("\u1100\u1161\u11a8", t.nfd("\uac01"), "Hangul LVT");
            Check.equal("\u1100\u1161", t.nfd("\uac00"), "Hangul LV");
            StringBuilder marks = new StringBuilder("a");
            StringBuilder sorted = new StringBuilder("a");
            for (int i = 0; i < 40; i++) {
                marks.append(i % 2 == 0 ? "\u0301" : "\u0323");
            }
            sorted.append("\u0323".repeat(20)).append("\u0301".repeat(20));
            Check.equal(sorted.toString(), t.nfd(marks.toString()), "a long run is sorted stably");
            StringBuilder lower = new StringBuilder();
            t.appendLowerCase(0x130, lower);
            t.appendLowerCase('Q', lower);
            Check.equal("i\u0307Q", lower.toString(), "lower mapping; unmapped code points stay");
            Check.isTrue(t.isMark(0x301) && !t.isMark('a'), "mark ranges");
        });
        Check.test("unicode_tables.txt: strict parsing", () -> {
            Check.fails(IllegalArgumentException.class, "version 1", () -> UnicodeTables.parse(
                    "# tinybert-edge unicode tables v2\n", "t"));
            Check.fails(IllegalArgumentException.class, "unknown entry kind", () -> UnicodeTables.parse(
                    header + "upper 0041 0061\n", "t"));
            Check.fails(IllegalArgumentException.class, "overlap", () -> UnicodeTables.parse(
                    header + "punct 0021 0030\npunct 0030 0031\n", "t"));
            Check.fails(IllegalArgumentException.class, "ends before", () -> UnicodeTables.parse(
                    header + "punct 0031 0030\n", "t"));
            Check.fails(IllegalArgumentException.class, "mapped twice", () -> UnicodeTables.parse(
                    header + "lower 0041 0061\nlower 0041 0062\n", "t"));
            Check.fails(IllegalArgumentException.class, "not an upper-case hex", () -> UnicodeTables.parse(
                    header + "cjk 4e00 9FFF\n", "t"));
            Check.fails(IllegalArgumentException.class, "beyond U+10FFFF", () -> UnicodeTables.parse(
                    header + "cjk 110000 110001\n", "t"));
            Check.fails(IllegalArgumentException.class, "fields", () -> UnicodeTables.parse(
                    header + "ccc 0300 0301\n", "t"));
        });
    }
}
