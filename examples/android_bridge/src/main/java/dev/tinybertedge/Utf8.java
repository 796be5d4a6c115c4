package dev.tinybertedge;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Strict UTF-8: bytes that are not UTF-8 are an error, never replacement characters that tokenize silently. */
public final class Utf8 {
    private Utf8() {}

    public static String decode(byte[] bytes, String what) throws IOException {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException exc) {
            throw new IOException(what + " is not valid UTF-8 (" + exc.getMessage()
                    + "); re-create it with a UTF-8 writer", exc);
        }
    }

    public static String readFile(Path path) throws IOException {
        return decode(Files.readAllBytes(path), path.toString());
    }
}
