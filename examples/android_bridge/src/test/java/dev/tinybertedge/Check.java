package dev.tinybertedge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/** A minimal assertion helper (no JUnit jar offline): named checks, counted, failures collected with their reason. */
final class Check {
    private Check() {}

    /** A test body that may throw. */
    interface Body {
        void run() throws Exception;
    }

    static int passed;
    static final List<String> failures = new ArrayList<>();

    /** Runs one named test; an exception or failed check inside it is recorded as its failure. */
    static void test(String name, Body body) {
        try {
            body.run();
            passed++;
        } catch (AssertionError | Exception exc) {
            failures.add(name + ": " + exc);
            System.err.println("FAIL " + name + ": " + exc);
        }
    }

    static void isTrue(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw new AssertionError(what + ": expected <" + expected + ">, got <" + actual + ">");
        }
    }

    static void equal(int[] expected, int[] actual, String what) {
        if (!Arrays.equals(expected, actual)) {
            throw new AssertionError(what + ": expected " + Arrays.toString(expected) + ", got "
                    + Arrays.toString(actual));
        }
    }

    /** The body must throw a {@code type} whose message contains {@code messagePart}; returns it. */
    static <T extends Throwable> T fails(Class<T> type, String messagePart, Body body) {
        try {
            body.run();
        } catch (Throwable thrown) {
            if (!type.isInstance(thrown)) {
                throw new AssertionError("expected " + type.getSimpleName() + ", got " + thrown, thrown);
            }
            String message = String.valueOf(thrown.getMessage());
            if (!message.contains(messagePart)) {
                throw new AssertionError("expected a message containing '" + messagePart + "', got: " + message);
            }
            return type.cast(thrown);
        }
        throw new AssertionError("expected " + type.getSimpleName() + " containing '" + messagePart
                + "', nothing was thrown");
    }
}
