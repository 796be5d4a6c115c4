package dev.tinybertedge;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Map;

/**
 * Runs the Java tokenizer over a tokenizer parity file (docs/bundle_format.md, "Tokenizer parity files": a header
 * line, then one {"text", "input_ids"} object a line) and counts the strings whose ids differ.
 */
final class ParityCheck {
    private ParityCheck() {}

    static final String FORMAT = "tinybert-edge-tokenizer-parity";

    /** Outcome of one pass over the file. */
    static final class Result {
        int strings;
        int mismatches;
        String reference;
    }

    static Result run(Path parityFile, Path vocabFile, UnicodeTables unicode, int showFirst) throws Exception {
        Result result = new Result();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(Files.newInputStream(parityFile),
                StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)))) {
            String headerLine = reader.readLine();
            if (headerLine == null) {
                throw new IOException(parityFile + " is empty; write it with tokenizer_corpus.write_parity_file");
            }
            Map<String, Object> header = Json.object(Json.parse(headerLine, parityFile + ": line 1"), "header");
            if (!FORMAT.equals(header.get("format")) || !Long.valueOf(1).equals(header.get("version"))) {
                throw new IOException(parityFile + ": line 1 is not a version 1 " + FORMAT + " header");
            }
            String vocabSha = Json.string(header, "vocab_sha256", "header");
            byte[] vocabBytes = Files.readAllBytes(vocabFile);
            String actualSha = Bundle.hex(MessageDigest.getInstance("SHA-256").digest(vocabBytes));
            if (!actualSha.equals(vocabSha)) {
                throw new IOException(vocabFile + " has sha256 " + actualSha + " but " + parityFile
                        + " was written with a vocab.txt of sha256 " + vocabSha + "; pass --vocab with that file");
            }
            result.reference = String.valueOf(header.get("reference"));
            Map<String, Object> tok = Json.object(Json.field(header, "tokenizer", "header"), "header.tokenizer");
            WordPieceTokenizer.Settings settings = BundleManifest.tokenizerSettings(tok, "header.tokenizer");
            int maxLength = BundleManifest.maxLength(tok, "header.tokenizer");
            WordPieceTokenizer tokenizer = new WordPieceTokenizer(
                    WordPieceTokenizer.parseVocab(Utf8.decode(vocabBytes, vocabFile.toString())), settings, unicode);

            String line;
            int lineNumber = 1;
            while ((line = reader.readLine()) != null) {
                lineNumber++;
                if (line.isEmpty()) {
                    continue;
                }
                String where = parityFile + ": line " + lineNumber;
                Map<String, Object> c = Json.object(Json.parse(line, where), where);
                String text = Json.string(c, "text", where);
                int[] expected = Json.intArray(Json.field(c, "input_ids", where), where + ".input_ids");
                int[] actual = tokenizer.encode(text, maxLength);
                result.strings++;
                if (!Arrays.equals(expected, actual)) {
                    result.mismatches++;
                    if (result.mismatches <= showFirst) {
                        System.err.println("parity mismatch (" + unicode.describe() + ") at line " + lineNumber
                                + " text " + Json.quote(text) + "\n  expected " + Arrays.toString(expected)
                                + "\n  java     " + Arrays.toString(actual) + "\n  tokens   "
                                + tokenizer.tokenize(text));
                    }
                }
            }
        }
        return result;
    }
}
