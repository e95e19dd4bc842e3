package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks what no build here can (there is no Docker
// engine): the builder matches go.mod's Go, the binary is static and
// versioned, the image runs as non-root, probes itself, and starts the
// binary with serve --all unless told otherwise.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines so each instruction is one line.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var froms, users []string
	instr := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		word = strings.ToUpper(word)
		instr[word] = append(instr[word], strings.TrimSpace(rest))
		switch word {
		case "FROM":
			froms = append(froms, strings.Fields(rest)[0])
			users = nil // USER is per stage
		case "USER":
			users = append(users, strings.TrimSpace(rest))
		}
	}

	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	if len(froms) < 2 || froms[0] != "golang:"+string(m[1]) {
		t.Errorf("stages %v: the builder must be golang:%s (go.mod) and a final stage must follow", froms, m[1])
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final image %s: want distroless/static or scratch", final)
	}
	build := strings.Join(instr["RUN"], "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "./cmd/pos"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build does not use %s", want)
		}
	}
	if len(users) == 0 || users[len(users)-1] == "root" || strings.HasPrefix(users[len(users)-1], "0") {
		t.Errorf("final stage runs as %v; want a non-root user", users)
	}
	for word, want := range map[string]string{
		"EXPOSE":     "8080",
		"ENTRYPOINT": `["pos"]`,
		"CMD":        `["serve", "--all"]`,
	} {
		if got := instr[word]; len(got) == 0 || got[len(got)-1] != want {
			t.Errorf("%s %v, want %s", word, got, want)
		}
	}
	hc := strings.Join(instr["HEALTHCHECK"], " ")
	if !strings.Contains(hc, `CMD ["pos", "healthcheck"`) || !strings.Contains(hc, "/health/ready") {
		t.Errorf("HEALTHCHECK %q must run `pos healthcheck` on /health/ready", hc)
	}

	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{".git", "deploy/.env"} {
		if !strings.Contains(string(ignore), must+"\n") {
			t.Errorf("Dockerfile.dockerignore does not keep %s out of the build context", must)
		}
	}
}
