package builder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stratabuild/strata/builder"
)

// The Modal-style chain. Build needs Buildah and a rootless setup, so this
// example only compiles.
func Example() {
	img := builder.FromRegistry("debian:bookworm-slim").
		RunCommands([]string{"apt-get update", "apt-get install -y git"}).
		Env(map[string]string{"APP_ENV": "prod"}).
		AddLocalDir("./src", "/app/src", builder.Copy(), builder.Ignore("**/__pycache__")).
		Workdir("/app").
		Cmd([]string{"python3", "-m", "app"})
	res, err := builder.Build(context.Background(), img, builder.WithTag("myapp"), builder.WithOutput(os.Stdout))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.ImageID)
}

// Plan lowers a chain to its steps and keys without building anything.
func ExampleImage_Plan() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	base := filepath.Join(dir, "rootfs.tar")
	_ = os.WriteFile(base, []byte("not really a tarball"), 0o644)

	img := builder.FromArchive(base).
		RunCommands([]string{"echo hello > /hello"}).
		Cmd([]string{"cat", "/hello"})
	p, err := img.Plan(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range p.Steps {
		fmt.Println(s.Index, s.Method, s.Key.Valid())
	}
	// Output:
	// 0 FromArchive true
	// 1 RunCommands true
	// 2 Cmd true
}

// Invalid arguments are recorded and reported by Plan and Build, naming the step.
func ExampleImage_RunCommands() {
	img := builder.Scratch().RunCommands(nil)
	fmt.Println(img.Err())
	// Output: step 1 (RunCommands): no commands given
}

func ExampleImage_Env() {
	img := builder.Scratch().Env(map[string]string{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
	p, _ := img.Plan(context.Background())
	fmt.Println(p.Steps[1].Description)
	// Output: LANG=C.UTF-8 PATH=/usr/bin:/bin
}

func ExampleImage_Label() {
	p, _ := builder.Scratch().Label(map[string]string{"org.opencontainers.image.source": "https://example.com/app"}).Plan(context.Background())
	fmt.Println(p.Steps[1].Method, p.Steps[1].Description)
	// Output: Label org.opencontainers.image.source=https://example.com/app
}

func ExampleImage_Workdir() {
	fmt.Println(builder.Scratch().Workdir("relative").Err())
	// Output: step 1 (Workdir): working directory "relative" must be an absolute path
}

func ExampleImage_Entrypoint() {
	p, _ := builder.Scratch().Entrypoint([]string{"/bin/app"}).Cmd([]string{"--help"}).Plan(context.Background())
	for _, s := range p.Steps[1:] {
		fmt.Println(s.Method, s.Description)
	}
	// Output:
	// Entrypoint ["/bin/app"]
	// Cmd ["--help"]
}

func ExampleImage_Cmd() {
	p, _ := builder.Scratch().Cmd([]string{"sh", "-c", "echo hi"}).Plan(context.Background())
	fmt.Println(p.Steps[1].Description)
	// Output: ["sh" "-c" "echo hi"]
}

func ExampleImage_Shell() {
	img := builder.Scratch().Shell([]string{"/bin/bash", "-eu", "-c"}).RunCommands([]string{"echo $0"})
	p, _ := img.Plan(context.Background())
	fmt.Println(p.Steps[1].Spec.Shell)
	// Output: [/bin/bash -eu -c]
}

func ExampleImage_AddLocalDir() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "main.py"), []byte("print(1)"), 0o644)

	// With Copy() the files are a normal step; without it they are added
	// after every build step, so editing them never rebuilds one.
	img := builder.Scratch().
		AddLocalDir(dir, "/app", builder.Copy(), builder.Ignore("**/*.pyc")).
		RunCommands([]string{"python3 /app/main.py"}).
		AddLocalFile(filepath.Join(dir, "main.py"), "/srv/main.py")
	p, _ := img.Plan(context.Background())
	for _, s := range p.Steps[1:] {
		fmt.Println(s.Index, s.Method)
	}
	// Output:
	// 1 AddLocalDir
	// 2 RunCommands
	// 3 AddLocalFile
}

func ExampleImage_AddLocalFile() {
	fmt.Println(builder.Scratch().AddLocalFile("app.conf", "etc/app.conf").Err())
	// Output: step 1 (AddLocalFile): remote path "etc/app.conf" must be absolute
}

func ExampleImage_With() {
	withTools := func(i builder.Image) builder.Image {
		return i.RunCommands([]string{"echo tools"})
	}
	p, _ := builder.Scratch().With(withTools).Plan(context.Background())
	fmt.Println(len(p.Steps))
	// Output: 2
}

func ExampleFromRegistry() {
	fmt.Println(builder.FromRegistry("not a valid reference").Err() != nil)
	// Output: true
}

func ExampleFromID() {
	// FromID resolves against the store, so it needs a session.
	_, err := builder.FromID("0123abcd").Plan(context.Background())
	fmt.Println(err)
	// Output: step 0 (FromID): FromID needs an open session (use Session.Plan or Session.Build)
}

func ExampleFromOCILayout() {
	_, err := builder.FromOCILayout("/nonexistent/layout").Plan(context.Background())
	fmt.Println(err != nil)
	// Output: true
}

func ExampleForceBuild() {
	img := builder.Scratch().RunCommands([]string{"date > /built"}, builder.ForceBuild())
	p, _ := img.Plan(context.Background())
	fmt.Println(p.Steps[1].Force)
	// Output: true
}

func ExampleWithEnv() {
	img := builder.Scratch().RunCommands([]string{"make"}, builder.WithEnv(map[string]string{"CFLAGS": "-O2"}))
	p, _ := img.Plan(context.Background())
	fmt.Println(p.Steps[1].Spec.Env)
	// Output: map[CFLAGS:-O2]
}

func ExampleWithSecrets() {
	tok := builder.SecretFromMap("deploy", map[string]string{"TOKEN": "s3cr3t"})
	img := builder.Scratch().RunCommands([]string{"fetch --token \"$TOKEN\""}, builder.WithSecrets(tok))
	p, _ := img.Plan(context.Background())
	fmt.Println(p.Steps[1].Spec.Secrets) // names only, never values
	// Output: [deploy/TOKEN]
}

// FromDockerfile builds a Dockerfile; each instruction is a cached step.
func ExampleFromDockerfile() {
	img := builder.FromDockerfile("./Dockerfile",
		builder.BuildArgs(map[string]string{"VERSION": "1.2"}),
		builder.Target("release"),
		builder.GPU("any"),
	)
	_ = img
}

// DockerfileCommands adds Dockerfile instructions to a Go chain.
func ExampleImage_DockerfileCommands() {
	img := builder.DebianSlim("3.12").DockerfileCommands([]string{
		"RUN --mount=type=cache,target=/root/.cache/pip pip install requests",
		"COPY app.py /app/",
	}, builder.ContextDir("./src"))
	_ = img
}

// RunNetwork gives every RUN of a Dockerfile that does not say otherwise
// only a loopback interface (docker build --network=none).
func ExampleRunNetwork() {
	img := builder.Scratch().DockerfileCommands([]string{
		"RUN ./offline-tests.sh",
		"RUN --network=host ./fetch.sh",
	}, builder.RunNetwork("none"))
	p, err := img.Plan(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range p.Steps[1:] {
		fmt.Printf("%s: network=%q\n", s.Description, s.Spec.Options["network"])
	}
	// Output:
	// RUN ./offline-tests.sh: network="none"
	// RUN --network=host ./fetch.sh: network=""
}

// Annotations on the manifest of the final image, in the store and in
// every output and push (docker buildx build --annotation).
func ExampleAnnotations() {
	img := builder.FromRegistry("docker.io/library/debian:bookworm-slim").RunCommands([]string{"echo hi > /hi"})
	build := func() (*builder.Result, error) {
		return builder.Build(context.Background(), img, builder.WithTag("app"),
			builder.Annotations(map[string]string{
				"org.opencontainers.image.source":   "https://example.com/app",
				"org.opencontainers.image.revision": "0123abc",
			}))
	}
	_ = build
}

// SSH forwards the user's ssh agent to RUN --mount=type=ssh (docker build
// --ssh default): private git dependencies install with the user's keys.
func ExampleSSH() {
	img := builder.FromDockerfile("./Dockerfile", builder.SSH("default", os.Getenv("SSH_AUTH_SOCK")))
	_ = img
}

// Format("docker") keeps a Dockerfile's HEALTHCHECK, SHELL and ONBUILD in
// the image (buildah bud --format docker).
func ExampleFormat() {
	_, err := builder.Build(context.Background(), builder.FromDockerfile("./Dockerfile"), builder.Format("docker"), builder.WithTag("app"))
	_ = err
}

// Build reports a chain's bad argument, naming the step, before it opens a
// store or starts a container.
func ExampleBuild() {
	img := builder.Scratch().Env(map[string]string{"APP": "1"}).Workdir("app")
	_, err := builder.Build(context.Background(), img, builder.WithTag("app"))
	fmt.Println(err)
	// Output: step 2 (Workdir): working directory "app" must be an absolute path
}

// A Session holds one store open for several builds (a CI job's images,
// or a program that builds on demand); each Build shares its cache.
func ExampleSession_Build() {
	ctx := context.Background()
	s, err := builder.Open(ctx, builder.SourceDateEpoch(time.Unix(1700000000, 0)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	base := builder.FromRegistry("debian:bookworm-slim").AptInstall([]string{"ca-certificates"})
	for _, name := range []string{"api", "worker"} {
		res, err := s.Build(ctx, base.AddLocalDir("./"+name, "/app", builder.Copy()), builder.WithTag(name))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(name, res.ImageID)
	}
}

// SecretFile gives a step a secret as a file, for tools that read one
// (a .npmrc, a service account key), and nothing in its environment.
func ExampleSecretFile() {
	creds := builder.SecretFromEnv("NPM_TOKEN")
	img := builder.DebianSlim("3.12").RunCommands(
		[]string{"NPM_CONFIG_USERCONFIG=/run/secrets/npmrc npm ci"},
		builder.SecretFile(creds, "NPM_TOKEN", "/run/secrets/npmrc"))
	_ = img
}

// Volumes keeps a named directory between builds (Modal's volumes=), for
// what a step downloads but the image should not hold.
func ExampleVolumes() {
	img := builder.DebianSlim("3.12").PipInstall([]string{"huggingface_hub"}).
		RunCommands([]string{"huggingface-cli download gpt2 --cache-dir /models"},
			builder.Volumes(map[string]string{"/models": "hf-cache"}))
	_ = img
}

// IgnoreFunc filters a directory with code instead of patterns (Modal's
// callable ignore=).
func ExampleIgnoreFunc() {
	big := func(p string) bool {
		st, err := os.Stat(filepath.Join("./data", p))
		return err == nil && !st.IsDir() && st.Size() > 100<<20
	}
	img := builder.DebianSlim("3.12").AddLocalDir("./data", "/data", builder.Copy(), builder.IgnoreFunc(big))
	_ = img
}

// PullPolicy("never") builds offline from the bases the store holds (by
// their tag, as podman pull names them).
func ExamplePullPolicy() {
	s, err := builder.Open(context.Background(), builder.PullPolicy("never"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	_, err = s.Build(context.Background(), builder.FromRegistry("debian:bookworm-slim").RunCommands([]string{"true"}))
	fmt.Println(err)
}

// Platforms builds an arm64 image on an amd64 host; its RUN steps run
// through qemu-user-static.
func ExamplePlatforms() {
	img := builder.FromRegistry("debian:bookworm-slim").RunCommands([]string{"uname -m > /arch"})
	_, err := builder.Build(context.Background(), img, builder.Platforms("linux/arm64"), builder.WithTag("app:arm64"))
	_ = err
}

// Arch makes a Debian base of another architecture (its package scripts
// run through qemu-user-static); the chain on it is built for that
// platform, linux/arm64 here.
func ExampleArch() {
	img := builder.DebianMirror("bookworm", builder.Arch("arm64")).RunCommands([]string{"dpkg --print-architecture > /arch"})
	_ = img
}

// Platform tells a rootfs archive's platform; the chain on it is built for
// that platform (Dockerfile's FROM --platform).
func ExamplePlatform() {
	img := builder.FromArchive("./rootfs-arm64.tar", builder.Platform("linux/arm64")).RunCommands([]string{"uname -m"})
	_ = img
}

// Pushes and tagged oci: layouts get a SLSA provenance by default; SBOM
// adds an SPDX SBOM and SignBy signs the image and both attestations.
// Result lists what was attached.
func ExampleSBOM() {
	img := builder.FromDockerfile("./Dockerfile")
	build := func() error {
		res, err := builder.Build(context.Background(), img,
			builder.Push("registry.example.com/team/app:1"),
			builder.SBOM(),
			builder.SignBy("/etc/strata/sign.key", builder.SecretFromEnv("SIGN_PASSPHRASE")))
		if err != nil {
			return err
		}
		for _, a := range res.Exports[0].Attestations {
			fmt.Println(a.PredicateType, a.Digest)
		}
		return nil
	}
	_ = build
}

// NoProvenance writes the image without attestations.
func ExampleNoProvenance() {
	img := builder.FromDockerfile("./Dockerfile")
	_ = func() error {
		_, err := builder.Build(context.Background(), img, builder.ExportTo("oci:/tmp/layout:app"), builder.NoProvenance())
		return err
	}
}

// Verify checks a pushed image's provenance against the definition: each
// step's key must reproduce from the source here.
func ExampleSession_Verify() {
	ctx := context.Background()
	verify := func() error {
		s, err := builder.Open(ctx)
		if err != nil {
			return err
		}
		defer s.Close()
		v, err := s.Verify(ctx, builder.FromDockerfile("./Dockerfile"), "docker://registry.example.com/team/app:1")
		if err != nil {
			return err
		}
		for _, st := range v.Steps {
			if !st.Same {
				fmt.Printf("%s: %s\n", st.Name(), st.Why)
			}
		}
		if !v.OK {
			return fmt.Errorf("%s does not reproduce", v.Image)
		}
		return nil
	}
	_ = verify
}
