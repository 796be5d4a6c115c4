package dev.tinybertedge;

import java.io.ByteArrayOutputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An on-device bundle (docs/bundle_format.md), opened and verified: the manifest is checked, the sha256 and size of
 * every listed file are verified before anything is used, and the tokenizer is built from the bundle's vocab.txt,
 * settings and Unicode tables. Plain JVM code: the files come from a {@link FileSource}, a folder here and the app's
 * assets on Android (see TinyBertClassifier).
 */
public final class Bundle {
    /** Where the bundle's files are read from. */
    public interface FileSource {
        /** Opens a file of the bundle; a missing file is a {@link FileNotFoundException} or {@link NoSuchFileException}. */
        InputStream open(String name) throws IOException;

        /** Whether the file is a symbolic link (never followed: a link could point outside the bundle). */
        boolean isSymbolicLink(String name) throws IOException;

        /** Names the source in messages. */
        String describe();
    }

    /** manifest.json is small; anything bigger is not a manifest. */
    static final int MAX_MANIFEST_BYTES = 1 << 20;

    private final FileSource source;
    private final BundleManifest manifest;
    private final WordPieceTokenizer tokenizer;
    private final Golden golden;

    private Bundle(FileSource source, BundleManifest manifest, WordPieceTokenizer tokenizer, Golden golden) {
        this.source = source;
        this.manifest = manifest;
        this.tokenizer = tokenizer;
        this.golden = golden;
    }

    /** A bundle folder on disk. */
    public static FileSource folder(Path dir) {
        return new FileSource() {
            @Override
            public InputStream open(String name) throws IOException {
                return Files.newInputStream(dir.resolve(name), LinkOption.NOFOLLOW_LINKS);
            }

            @Override
            public boolean isSymbolicLink(String name) {
                return Files.isSymbolicLink(dir.resolve(name));
            }

            @Override
            public String describe() {
                return dir.toString();
            }
        };
    }

    public static Bundle open(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new BundleException(BundleException.Reason.MISSING_OR_TRUNCATED, dir + " is not a folder; pass"
                    + " the bundle folder that `tinybert-edge package` wrote (unzip a .zip bundle first)");
        }
        return open(folder(dir));
    }

    /** Read manifest.json, verify every listed file, then load the tokenizer and the golden vectors. */
    public static Bundle open(FileSource source) throws IOException {
        String where = source.describe();
        byte[] manifestBytes = readVerified(source, BundleManifest.FILE_NAME, null, MAX_MANIFEST_BYTES, true);
        BundleManifest manifest = BundleManifest.parse(
                decode(manifestBytes, where + "/" + BundleManifest.FILE_NAME));

        // Check every file before raising, so one message lists everything that is wrong.
        Map<String, byte[]> kept = new HashMap<>();
        List<BundleException> problems = new ArrayList<>();
        for (Map.Entry<String, BundleManifest.FileEntry> entry : manifest.files.entrySet()) {
            String name = entry.getKey();
            boolean keep = name.equals(manifest.vocabFile) || name.equals(manifest.unicodeTablesFile)
                    || name.equals(manifest.goldenFile);
            try {
                byte[] bytes = readVerified(source, name, entry.getValue(), Long.MAX_VALUE, keep);
                if (keep) {
                    kept.put(name, bytes);
                }
            } catch (BundleException exc) {
                problems.add(exc);
            }
        }
        if (!problems.isEmpty()) {
            StringBuilder message = new StringBuilder("the bundle " + where + " failed verification: ");
            for (int i = 0; i < problems.size(); i++) {
                message.append(i == 0 ? "" : "; ").append(problems.get(i).getMessage());
            }
            message.append(". Copy the bundle again from the output of `tinybert-edge package` (and check it there"
                    + " with `tinybert-edge verify`)");
            throw new BundleException(problems.get(0).reason(), message.toString(), problems.get(0));
        }

        Map<String, Integer> vocab;
        UnicodeTables unicode;
        try {
            vocab = WordPieceTokenizer.parseVocab(decode(kept.get(manifest.vocabFile), manifest.vocabFile));
            unicode = UnicodeTables.parse(decode(kept.get(manifest.unicodeTablesFile), manifest.unicodeTablesFile),
                    manifest.unicodeTablesFile);
        } catch (IllegalArgumentException exc) {
            throw new BundleException(BundleException.Reason.MALFORMED, exc.getMessage(), exc);
        }
        for (Map.Entry<String, Integer> special : manifest.specialIds.entrySet()) {
            Integer id = vocab.get(special.getKey());
            if (!special.getValue().equals(id)) {
                throw new BundleException(BundleException.Reason.MALFORMED, BundleManifest.FILE_NAME + " gives "
                        + special.getKey() + " the id " + special.getValue() + " but " + manifest.vocabFile + " has "
                        + (id == null ? "no such token" : "id " + id) + "; the bundle is inconsistent: re-package it");
            }
        }
        WordPieceTokenizer tokenizer;
        try {
            tokenizer = new WordPieceTokenizer(vocab, manifest.tokenizerSettings, unicode);
        } catch (IllegalArgumentException exc) {
            throw new BundleException(BundleException.Reason.MALFORMED, exc.getMessage(), exc);
        }
        Golden golden = Golden.parse(decode(kept.get(manifest.goldenFile), manifest.goldenFile),
                manifest.goldenFile, manifest.outputWidth(), manifest.perToken(),
                BundleManifest.TEXT_CLASSIFICATION.equals(manifest.task)
                        || BundleManifest.TOKEN_CLASSIFICATION.equals(manifest.task));
        return new Bundle(source, manifest, tokenizer, golden);
    }

    public BundleManifest manifest() {
        return manifest;
    }

    public WordPieceTokenizer tokenizer() {
        return tokenizer;
    }

    public Golden golden() {
        return golden;
    }

    /** A listed file's bytes, verified against the manifest again as they are read (what is used is what was checked). */
    public byte[] readFile(String name) throws IOException {
        BundleManifest.FileEntry entry = manifest.files.get(name);
        if (entry == null) {
            throw new BundleException(BundleException.Reason.MALFORMED, name + " is not listed in "
                    + BundleManifest.FILE_NAME + "; only listed (checksummed) files can be read");
        }
        return readVerified(source, name, entry, Long.MAX_VALUE, true);
    }

    /** Model inputs for a text: token ids with the manifest's max_length, padded to the smallest bucket that fits. */
    public WordPieceTokenizer.Encoding encode(String text, BundleManifest.Model model) {
        int[] ids = tokenizer.encode(text, manifest.maxLength);
        return tokenizer.pad(ids, model.bucketFor(ids.length));
    }

    /** Model inputs for a sentence pair (token types 0 then 1), padded to the smallest bucket that fits. */
    public WordPieceTokenizer.Encoding encode(String text, String pair, BundleManifest.Model model) {
        WordPieceTokenizer.Encoding encoding = tokenizer.encodePair(text, pair, manifest.maxLength);
        return tokenizer.pad(encoding, model.bucketFor(encoding.length));
    }

    /**
     * Token-level golden check: the ids this tokenizer gives each golden text against the ids recorded at packaging.
     * Returns one message per mismatching case (empty when all match).
     */
    public List<String> goldenTokenMismatches() {
        List<String> mismatches = new ArrayList<>();
        for (int i = 0; i < golden.cases.size(); i++) {
            Golden.Case c = golden.cases.get(i);
            WordPieceTokenizer.Encoding encoding = tokenizer.encodePair(c.text, c.textPair, manifest.maxLength);
            int[] ids = Arrays.copyOf(encoding.inputIds, encoding.length);
            if (!Arrays.equals(ids, c.inputIds)) {
                mismatches.add("golden case " + i + " " + Json.quote(c.text) + ": expected "
                        + Arrays.toString(c.inputIds) + ", got " + Arrays.toString(ids));
            }
        }
        return mismatches;
    }

    /**
     * Reads a file through the source, refusing symbolic links; with an entry, checks its size (reading at most one
     * buffer past it, so a huge substitute is not read whole) and its sha256. Returns the bytes when {@code keep}.
     */
    private static byte[] readVerified(FileSource source, String name, BundleManifest.FileEntry entry, long limit,
                                       boolean keep) throws IOException {
        BundleManifest.checkFileName(name.equals(BundleManifest.FILE_NAME) ? "x" : name);
        if (source.isSymbolicLink(name)) {
            throw new BundleException(BundleException.Reason.UNSAFE_PATH, name + " is a symbolic link; a bundle"
                    + " holds plain files only");
        }
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException exc) {
            throw new IllegalStateException("this JVM has no SHA-256", exc);
        }
        long expected = entry == null ? -1 : entry.bytes;
        long max = entry == null ? limit : expected;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        long total = 0;
        try (InputStream in = source.open(name)) {
            byte[] buffer = new byte[1 << 16];
            int n;
            while ((n = in.read(buffer)) > 0) {
                total += n;
                if (total > max) {
                    throw new BundleException(BundleException.Reason.MISSING_OR_TRUNCATED, name
                            + (entry == null ? " is larger than " + max + " bytes" : " is larger than the "
                            + expected + " bytes the manifest lists"));
                }
                sha.update(buffer, 0, n);
                if (keep) {
                    out.write(buffer, 0, n);
                }
            }
        } catch (FileNotFoundException | NoSuchFileException exc) {
            throw new BundleException(BundleException.Reason.MISSING_OR_TRUNCATED, name + " is missing", exc);
        }
        if (entry != null) {
            if (total != expected) {
                throw new BundleException(BundleException.Reason.MISSING_OR_TRUNCATED, name + " has " + total
                        + " bytes, the manifest lists " + expected + " (truncated or replaced)");
            }
            String actual = hex(sha.digest());
            if (!actual.equals(entry.sha256)) {
                throw new BundleException(BundleException.Reason.TAMPERED, name + " has sha256 " + actual
                        + ", the manifest lists " + entry.sha256 + " (tampered)");
            }
        }
        return out.toByteArray();
    }

    private static String decode(byte[] bytes, String what) throws BundleException {
        try {
            return Utf8.decode(bytes, what);
        } catch (IOException exc) {
            throw new BundleException(BundleException.Reason.MALFORMED, exc.getMessage(), exc);
        }
    }

    static String hex(byte[] digest) {
        StringBuilder out = new StringBuilder(digest.length * 2);
        for (byte b : digest) {
            out.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return out.toString();
    }
}
