package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dockerfileBuildLine returns the command of the RUN instruction after the "# build-line" marker in
// the Dockerfile, with continuation lines joined and RUN's --mount options removed.
func dockerfileBuildLine(t *testing.T, dockerfile []byte) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	var b strings.Builder
	state := 0 // 0: looking for the marker, 1: want RUN, 2: in a continued RUN
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch state {
		case 0:
			if line == "# build-line" {
				state = 1
			}
			continue
		case 1:
			rest, ok := strings.CutPrefix(line, "RUN ")
			if !ok {
				t.Fatalf("the line after # build-line is not a RUN: %q", line)
			}
			line = rest
			state = 2
		}
		cont := strings.HasSuffix(line, `\`)
		b.WriteString(strings.TrimSuffix(line, `\`) + " ")
		if !cont {
			break
		}
	}
	if state != 2 {
		t.Fatal("no RUN after a # build-line marker in the Dockerfile")
	}
	var words []string
	for _, w := range strings.Fields(b.String()) {
		if !strings.HasPrefix(w, "--mount=") {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// TestDockerfileBuildLine runs the Dockerfile's own `go build` line (CGO off, version stamped, as the
// image's build stage does) and checks that the binary reports the stamped version and commit.
func TestDockerfileBuildLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the eventgate binary; skipped with -short")
	}
	root := repoRoot(t)
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	line := dockerfileBuildLine(t, df)
	for _, want := range []string{"go build", "-trimpath", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "-o /out/eventgate", "./cmd/eventgate"} {
		if !strings.Contains(line, want) {
			t.Fatalf("build line %q lacks %q", line, want)
		}
	}
	if !regexp.MustCompile(`(?m)^ENV CGO_ENABLED=0\b`).Match(df) {
		t.Error("the build stage must set CGO_ENABLED=0")
	}
	checkFinalStage(t, string(df))

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", strings.Replace(line, "-o /out/eventgate", `-o "$OUT/eventgate"`, 1))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "VERSION=v9.8.7-deploytest", "COMMIT=0123abcd", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}
	bin := filepath.Join(out, "eventgate")
	v, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("eventgate version: %v\n%s", err, v)
	}
	for _, want := range []string{"v9.8.7-deploytest", "0123abcd", "go1."} {
		if !strings.Contains(string(v), want) {
			t.Errorf("eventgate version printed %q, want it to contain %q", v, want)
		}
	}
	// Static: no dynamic section means no interpreter to find in a distroless image.
	if f, err := os.ReadFile(bin); err == nil && bytes.Contains(f, []byte("/lib64/ld-linux")) {
		t.Error("the binary is dynamically linked")
	}
}

// checkFinalStage: the image runs as a numeric non-root user, with exec-form entrypoint (no shell).
func checkFinalStage(t *testing.T, df string) {
	t.Helper()
	stages := regexp.MustCompile(`(?m)^FROM `).Split(df, -1)
	final := stages[len(stages)-1]
	if !strings.Contains(strings.SplitN(final, "\n", 2)[0], "distroless/static") {
		t.Errorf("final stage is %q, want a distroless static base", strings.SplitN(final, "\n", 2)[0])
	}
	user := regexp.MustCompile(`(?m)^USER (\d+)(:\d+)?\s*$`).FindStringSubmatch(final)
	if user == nil || user[1] == "0" {
		t.Errorf("final stage must set a numeric non-root USER, got %v", user)
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \["/eventgate"\]`).MatchString(final) {
		t.Error(`final stage must use exec form ENTRYPOINT ["/eventgate"]`)
	}
}
