package dev.tinybertedge;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipInputStream;

/**
 * A search index that the SDK runtime wrote ({@code build_index(model, documents).save(path)}, see
 * tinybert_edge/runtime/index.py): document vectors, float32 or int8 with one float32 scale per row, their ids, and a
 * JSON header with the sha256 of the bundle model file that embedded them and of every array. The file is an
 * {@code .npz} (a zip of {@code .npy} arrays, no pickles), read here with {@link java.util.zip}. Like the Python
 * runtime, {@link #read} refuses a file that is not such an index, an array whose bytes changed, and
 * {@link #checkModel} an index that another model built (its vectors live in another space).
 *
 * <p>{@link #search} is exact top-k by dot product (cosine similarity for a model that normalises its vectors, as
 * the embedding bundles do in-graph), best first, ties in document order: the Python runtime's
 * {@code search_vectors}.
 */
public final class SentenceIndex {
    public static final String FORMAT = "tinybert-edge-index";
    public static final long SCHEMA_VERSION = 1;
    /** Refuses absurd arrays before allocating them (far above any on-device index). */
    static final long MAX_ARRAY_BYTES = 1L << 30;

    /** One search result: its rank (1 = best), the document's id and its score. */
    public static final class Hit {
        public final int rank;
        public final String id;
        public final float score;

        Hit(int rank, String id, float score) {
            this.rank = rank;
            this.id = id;
            this.score = score;
        }

        @Override
        public String toString() {
            return rank + ":" + id + "=" + score;
        }
    }

    public final List<String> ids;
    public final int dimension;
    /** "float32" or "int8". */
    public final String precision;
    /** The sha256 of the bundle model file that embedded the documents, and that file's name. */
    public final String modelSha256;
    public final String modelFile;
    private final float[] vectors;  // float32: count x dimension
    private final byte[] quantized;  // int8: count x dimension
    private final float[] scales;   // int8: one per row

    private SentenceIndex(List<String> ids, int dimension, String precision, String modelSha256, String modelFile,
                          float[] vectors, byte[] quantized, float[] scales) {
        this.ids = ids;
        this.dimension = dimension;
        this.precision = precision;
        this.modelSha256 = modelSha256;
        this.modelFile = modelFile;
        this.vectors = vectors;
        this.quantized = quantized;
        this.scales = scales;
    }

    public int size() {
        return ids.size();
    }

    /** Read and check an index file (see the class comment). */
    public static SentenceIndex read(Path path) throws IOException {
        try (InputStream in = Files.newInputStream(path)) {
            return read(in, path.toString());
        }
    }

    /** Read and check an index from a stream (an app's asset). */
    public static SentenceIndex read(InputStream in, String where) throws IOException {
        String fix = "; rebuild it with build_index(model, documents).save(path)";
        Map<String, Npy> arrays = new HashMap<>();
        byte[] file = readAll(in, where);
        // A zip is read from its central directory (numpy, Python's zipfile): one cut short has lost it, and is
        // refused even if every entry's data is intact.
        int declared = centralDirectoryEntries(file);
        if (declared < 0) {
            throw corrupted(where, "it is truncated or not a zip file (no end of central directory)" + fix);
        }
        try (ZipInputStream zip = new ZipInputStream(new java.io.ByteArrayInputStream(file), StandardCharsets.UTF_8)) {
            ZipEntry entry;
            while ((entry = zip.getNextEntry()) != null) {
                String name = entry.getName();
                if (!name.endsWith(".npy") || name.contains("/")) {
                    throw corrupted(where, "it holds the entry '" + name + "', which is not a .npy array" + fix);
                }
                if (arrays.put(name.substring(0, name.length() - 4), Npy.parse(readAll(zip, where), where + ":"
                        + name)) != null) {
                    throw corrupted(where, "it holds the entry '" + name + "' twice" + fix);
                }
            }
        } catch (ZipException | IllegalArgumentException | java.io.EOFException exc) {
            throw corrupted(where, "it is corrupted or not an index file (" + exc.getMessage() + ")" + fix);
        }
        if (arrays.size() != declared) {
            throw corrupted(where, "its central directory lists " + declared + " entries, " + arrays.size()
                    + " were found" + fix);
        }
        Npy headerArray = arrays.get("header");
        Map<String, Object> header;
        try {
            if (headerArray == null || !headerArray.descr.equals("|u1") || headerArray.shape.length != 1) {
                throw new Json.JsonException("no uint8 'header' array");
            }
            header = Json.object(Json.parse(Utf8.decode(headerArray.data, where + ": header"), where + ": header"),
                    "header");
            if (!FORMAT.equals(header.get("format")) || !(header.get("ids") instanceof List)) {
                throw new Json.JsonException("format " + header.get("format"));
            }
        } catch (IOException | IllegalArgumentException exc) {
            throw corrupted(where, "it is not a " + FORMAT + " file (" + exc.getMessage() + ")" + fix);
        }
        if (!Long.valueOf(SCHEMA_VERSION).equals(header.get("schema_version"))) {
            throw corrupted(where, "it has schema version " + header.get("schema_version") + "; this reader reads "
                    + SCHEMA_VERSION + fix);
        }
        String precision = String.valueOf(header.get("precision"));
        Object countValue = header.get("count");
        Object dimensionValue = header.get("dimension");
        if (!(countValue instanceof Long) || !(dimensionValue instanceof Long)
                || (!precision.equals("float32") && !precision.equals("int8"))) {
            throw corrupted(where, "its header's count, dimension or precision is missing or wrong" + fix);
        }
        long count = (Long) countValue;
        long dimension = (Long) dimensionValue;
        List<String> problems = new ArrayList<>();
        boolean int8 = precision.equals("int8");
        Npy vectors = arrays.get("vectors");
        Npy scales = arrays.get("scales");
        if (vectors == null || !vectors.descr.equals(int8 ? "|i1" : "<f4") || vectors.shape.length != 2
                || vectors.shape[0] != count || vectors.shape[1] != dimension) {
            problems.add("vectors " + (vectors == null ? "missing" : vectors.describe()) + " are not the " + count
                    + " x " + dimension + " " + precision + " the header says");
        } else if (!sha256(vectors.data).equals(header.get("vectors_sha256"))) {
            problems.add("the vectors' sha256 differs from the header's (the file was changed or damaged)");
        }
        if (int8) {
            if (scales == null || !scales.descr.equals("<f4") || scales.shape.length != 1 || scales.shape[0] != count) {
                problems.add("the int8 vectors' scales are missing or misshapen");
            } else if (!sha256(scales.data).equals(header.get("scales_sha256"))) {
                problems.add("the scales' sha256 differs from the header's (the file was changed or damaged)");
            }
        }
        List<String> ids = new ArrayList<>();
        for (Object id : (List<?>) header.get("ids")) {
            if (!(id instanceof String)) {
                problems.add("an id is not a string");
                break;
            }
            ids.add((String) id);
        }
        if (ids.size() != count) {
            problems.add(ids.size() + " ids for " + count + " vectors");
        }
        Object modelSha = header.get("model_sha256");
        if (!(modelSha instanceof String)) {
            problems.add("the header names no model_sha256");
        }
        if (!problems.isEmpty()) {
            throw corrupted(where, "it is corrupted: " + String.join("; ", problems) + fix);
        }
        Object modelFile = header.get("model_file");
        float[] floats = null;
        byte[] bytes = null;
        float[] rowScales = null;
        if (int8) {
            bytes = vectors.data;
            rowScales = floats(scales.data);
        } else {
            floats = floats(vectors.data);
        }
        return new SentenceIndex(Collections.unmodifiableList(ids), (int) dimension, precision, (String) modelSha,
                modelFile instanceof String ? (String) modelFile : "", floats, bytes, rowScales);
    }

    /**
     * Refuse the index unless the bundle's model file (the one that embeds the queries) is the one that built it;
     * returns the index for chaining.
     */
    public SentenceIndex checkModel(Bundle bundle, BundleManifest.Model model) throws BundleException {
        if (!BundleManifest.EMBEDDING.equals(bundle.manifest().task)) {
            throw new BundleException(BundleException.Reason.MALFORMED, "the bundle is a " + bundle.manifest().task
                    + " bundle; an index needs an embedding bundle");
        }
        String found = bundle.manifest().files.get(model.file).sha256;
        return checkModel(found, model.file);
    }

    /** Refuse the index unless it was built by the model file of this sha256 (see the other overload). */
    public SentenceIndex checkModel(String modelFileSha256, String modelFileName) throws BundleException {
        if (!modelFileSha256.equals(modelSha256)) {
            throw new BundleException(BundleException.Reason.MALFORMED, "the index was built by another model (its"
                    + " model file sha256 " + prefix(modelSha256) + "..., '" + modelFile + "'; this bundle's '"
                    + modelFileName + "' is " + prefix(modelFileSha256) + "...): its vectors would not be comparable"
                    + " with this model's queries; rebuild it with build_index(model, documents).save(path) using"
                    + " this bundle's " + modelFileName);
        }
        return this;
    }

    /** The dot products of a query vector with every document vector (float32, as the Python runtime). */
    public float[] scores(float[] query) {
        if (query.length != dimension) {
            throw new IllegalArgumentException("a query vector of " + query.length + " values does not match the "
                    + "index's dimension " + dimension);
        }
        float[] out = new float[ids.size()];
        for (int row = 0; row < out.length; row++) {
            double sum = 0;
            int base = row * dimension;
            if (quantized == null) {
                for (int j = 0; j < dimension; j++) {
                    sum += (double) query[j] * vectors[base + j];
                }
                out[row] = (float) sum;
            } else {
                for (int j = 0; j < dimension; j++) {
                    sum += (double) query[j] * quantized[base + j];
                }
                out[row] = (float) sum * scales[row];
            }
        }
        return out;
    }

    /** The top {@code k} documents for a query vector, best first; ties in document order. */
    public List<Hit> search(float[] query, int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k = " + k + " must be a positive integer");
        }
        float[] scores = scores(query);
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < scores.length; i++) {
            order.add(i);
        }
        order.sort((a, b) -> {
            float x = Float.isNaN(scores[a]) ? Float.NEGATIVE_INFINITY : scores[a];  // NaN last, as numpy sorts it
            float y = Float.isNaN(scores[b]) ? Float.NEGATIVE_INFINITY : scores[b];
            return x > y ? -1 : x < y ? 1 : Integer.compare(a, b);  // equal scores (0.0, -0.0 too): document order
        });
        List<Hit> hits = new ArrayList<>();
        for (int r = 0; r < Math.min(k, order.size()); r++) {
            int i = order.get(r);
            hits.add(new Hit(r + 1, ids.get(i), scores[i]));
        }
        return Collections.unmodifiableList(hits);
    }

    private static String prefix(String sha) {
        return sha.length() > 12 ? sha.substring(0, 12) : sha;
    }

    private static BundleException corrupted(String where, String message) {
        return new BundleException(BundleException.Reason.TAMPERED, "index '" + where + "': " + message);
    }

    /** The entry count of the zip's end of central directory record, or -1 when there is none. */
    private static int centralDirectoryEntries(byte[] zip) {
        ByteBuffer buffer = ByteBuffer.wrap(zip).order(ByteOrder.LITTLE_ENDIAN);
        for (int at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xFFFF); at--) {
            if (buffer.getInt(at) == 0x06054b50 && at + 22 + (buffer.getShort(at + 20) & 0xFFFF) == zip.length) {
                return buffer.getShort(at + 10) & 0xFFFF;
            }
        }
        return -1;
    }

    private static byte[] readAll(InputStream in, String where) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[1 << 16];
        int n;
        while ((n = in.read(buffer)) > 0) {
            out.write(buffer, 0, n);
            if (out.size() > MAX_ARRAY_BYTES) {
                throw new IOException(where + ": an array of more than " + MAX_ARRAY_BYTES + " bytes; not an index");
            }
        }
        return out.toByteArray();
    }

    private static float[] floats(byte[] data) {
        float[] out = new float[data.length / 4];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    static String sha256(byte[] data) {
        try {
            return Bundle.hex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException exc) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", exc);
        }
    }

    /**
     * One {@code .npy} array (format versions 1-3): its dtype descriptor, shape and raw C-order data. Fortran order,
     * object arrays and data whose length disagrees with the shape are refused.
     */
    static final class Npy {
        private static final Pattern HEADER = Pattern.compile(
                "\\{\\s*'descr'\\s*:\\s*'([^']*)'\\s*,\\s*'fortran_order'\\s*:\\s*(True|False)\\s*,"
                + "\\s*'shape'\\s*:\\s*\\(([0-9,\\s]*)\\)\\s*,?\\s*\\}\\s*");

        final String descr;
        final long[] shape;
        final byte[] data;

        private Npy(String descr, long[] shape, byte[] data) {
            this.descr = descr;
            this.shape = shape;
            this.data = data;
        }

        String describe() {
            StringBuilder s = new StringBuilder(descr).append(" (");
            for (int i = 0; i < shape.length; i++) {
                s.append(i > 0 ? ", " : "").append(shape[i]);
            }
            return s.append(')').toString();
        }

        static Npy parse(byte[] bytes, String where) {
            byte[] magic = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
            if (bytes.length < 10) {
                throw new IllegalArgumentException(where + " is too short for a .npy array");
            }
            for (int i = 0; i < magic.length; i++) {
                if (bytes[i] != magic[i]) {
                    throw new IllegalArgumentException(where + " lacks the .npy magic");
                }
            }
            int major = bytes[6];
            ByteBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            long headerLength;
            int offset;
            if (major == 1) {
                headerLength = buffer.getShort(8) & 0xFFFF;
                offset = 10;
            } else if (major == 2 || major == 3) {
                if (bytes.length < 12) {
                    throw new IllegalArgumentException(where + " is too short for a .npy array");
                }
                headerLength = buffer.getInt(8) & 0xFFFFFFFFL;
                offset = 12;
            } else {
                throw new IllegalArgumentException(where + " has .npy format version " + major + "; known: 1-3");
            }
            if (offset + headerLength > bytes.length) {
                throw new IllegalArgumentException(where + ": the .npy header runs past the end");
            }
            String text = new String(bytes, offset, (int) headerLength, major == 3 ? StandardCharsets.UTF_8
                    : StandardCharsets.ISO_8859_1);
            Matcher m = HEADER.matcher(text);
            if (!m.matches()) {
                throw new IllegalArgumentException(where + ": unreadable .npy header " + Json.quote(text.trim()));
            }
            if (m.group(2).equals("True")) {
                throw new IllegalArgumentException(where + " is in Fortran order; an index stores C order");
            }
            String descr = m.group(1);
            int itemSize;
            switch (descr) {
                case "<f4":
                    itemSize = 4;
                    break;
                case "|i1":
                case "|u1":
                    itemSize = 1;
                    break;
                default:
                    throw new IllegalArgumentException(where + " has dtype '" + descr
                            + "'; an index holds only <f4, |i1 and |u1 arrays");
            }
            List<Long> dims = new ArrayList<>();
            for (String part : m.group(3).split(",")) {
                if (!part.trim().isEmpty()) {
                    dims.add(Long.parseLong(part.trim()));
                }
            }
            long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
            long elements = 1;
            for (long d : shape) {
                elements = Math.multiplyExact(elements, d);
            }
            long dataBytes = elements * itemSize;
            int start = (int) (offset + headerLength);
            if (bytes.length - start != dataBytes) {
                throw new IllegalArgumentException(where + " holds " + (bytes.length - start) + " data bytes; its "
                        + "shape needs " + dataBytes);
            }
            byte[] data = new byte[(int) dataBytes];
            System.arraycopy(bytes, start, data, 0, data.length);
            return new Npy(descr, shape, data);
        }
    }
}
