package dev.tinybertedge;

import java.io.IOException;

/** A bundle that must not be used: the message names the problem and the fix; {@link #reason()} says which kind. */
public final class BundleException extends IOException {
    private static final long serialVersionUID = 1L;

    /** Why a bundle was refused. */
    public enum Reason {
        /** A listed file is absent, or has another size than the manifest says (truncated). */
        MISSING_OR_TRUNCATED,
        /** A listed file has the right size but another sha256. */
        TAMPERED,
        /** The manifest's format or schema_version is not one this reader knows. */
        UNSUPPORTED_SCHEMA,
        /** The manifest's task (what the model's outputs mean) is not one this reader implements. */
        UNSUPPORTED_TASK,
        /** The manifest, golden.json, vocab.txt or unicode_tables.txt is malformed or inconsistent. */
        MALFORMED,
        /** A file name that could escape the bundle folder, or a symbolic link. */
        UNSAFE_PATH,
    }

    private final Reason reason;

    public BundleException(Reason reason, String message) {
        super(message);
        this.reason = reason;
    }

    public BundleException(Reason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
