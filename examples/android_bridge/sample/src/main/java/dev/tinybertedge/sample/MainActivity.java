package dev.tinybertedge.sample;

import android.app.Activity;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.os.SystemClock;
import android.view.inputmethod.EditorInfo;
import android.widget.EditText;
import android.widget.LinearLayout;
import android.widget.TextView;

import java.io.IOException;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import dev.tinybertedge.android.TinyBertClassifier;

/**
 * Sample: type a sentence, see the label, the probabilities and the time one call took. The bundle is
 * app/src/main/assets/bundle/ (the folder `tinybert-edge package` wrote); it is verified, golden vectors included,
 * when the activity starts. Inference runs off the UI thread.
 */
public final class MainActivity extends Activity {
    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private final Handler ui = new Handler(Looper.getMainLooper());
    private TinyBertClassifier classifier;
    private TextView output;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        LinearLayout layout = new LinearLayout(this);
        layout.setOrientation(LinearLayout.VERTICAL);
        EditText input = new EditText(this);
        input.setHint("Type a sentence and press enter");
        input.setSingleLine(true);
        output = new TextView(this);
        layout.addView(input);
        layout.addView(output);
        setContentView(layout);

        output.setText("Verifying the bundle…");
        worker.execute(() -> {
            String message;
            try {
                classifier = TinyBertClassifier.open(getAssets(), "bundle", 2);
                List<String> failures = classifier.verifyGolden();
                message = failures.isEmpty() ? "Bundle verified: golden vectors reproduced on this device."
                        : "Golden vectors FAILED on this device:\n" + String.join("\n", failures);
            } catch (IOException | RuntimeException exc) {
                message = "Cannot use the bundle: " + exc.getMessage();
            }
            String shown = message;
            ui.post(() -> output.setText(shown));
        });

        input.setOnEditorActionListener((view, action, event) -> {
            if (action != EditorInfo.IME_ACTION_DONE && event == null) {
                return false;
            }
            String text = view.getText().toString();
            worker.execute(() -> {
                if (classifier == null) {
                    return;
                }
                long start = SystemClock.elapsedRealtimeNanos();
                TinyBertClassifier.Result result = classifier.classify(text);
                double ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6;
                StringBuilder shown = new StringBuilder(String.format(Locale.ROOT, "%s  (%.1f ms, bucket %d)\n",
                        result.label, ms, result.sequenceBucket));
                for (int i = 0; i < result.probabilities.length; i++) {
                    shown.append(String.format(Locale.ROOT, "%-12s %.3f\n", classifier.manifest().labels.get(i),
                            result.probabilities[i]));
                }
                ui.post(() -> output.setText(shown.toString()));
            });
            return true;
        });
    }

    @Override
    protected void onDestroy() {
        worker.execute(() -> {  // on the worker, after any classification still running
            if (classifier != null) {
                classifier.close();
            }
        });
        worker.shutdown();
        super.onDestroy();
    }
}
