package builder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stratabuild/strata/builder"
)

// lastCommands plans img and prints the commands of its last step.
func lastCommands(img builder.Image) {
	p, err := img.Plan(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range p.Steps[len(p.Steps)-1].Spec.Args {
		fmt.Println(c)
	}
}

func ExampleImage_AptInstall() {
	lastCommands(builder.Scratch().AptInstall([]string{"git", "curl"}))
	// Output: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y curl git
}

func ExampleImage_PipInstall() {
	lastCommands(builder.Scratch().PipInstall([]string{"httpx~=0.23.3", "click"},
		builder.IndexURL("https://pypi.example.com/simple")))
	// Output: python -m pip install --no-cache-dir click 'httpx~=0.23.3' --index-url https://pypi.example.com/simple
}

func ExampleImage_PipInstallFromRequirements() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	req := filepath.Join(dir, "requirements.txt")
	_ = os.WriteFile(req, []byte("numpy\n"), 0o644)
	lastCommands(builder.Scratch().PipInstallFromRequirements(req))
	// Output: python -m pip install --no-cache-dir -r /.strata/in/requirements/requirements.txt
}

func ExampleImage_PipInstallFromPyproject() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	pp := filepath.Join(dir, "pyproject.toml")
	_ = os.WriteFile(pp, []byte("[project]\nname = 'app'\ndependencies = ['requests>=2']\n\n[project.optional-dependencies]\ntest = ['pytest']\n"), 0o644)
	lastCommands(builder.Scratch().PipInstallFromPyproject(pp, builder.OptionalDependencies("test")))
	// Output: python -m pip install --no-cache-dir pytest 'requests>=2'
}

func ExampleImage_PipInstallPrivateRepos() {
	gh := builder.SecretFromMap("github", map[string]string{"GITHUB_TOKEN": "ghp_example"})
	lastCommands(builder.Scratch().PipInstallPrivateRepos([]string{"github.com/ecorp/private-one@1.0.0"}, "erikbern", builder.WithSecrets(gh)))
	// Output: python -m pip install --no-cache-dir git+https://erikbern:"${GITHUB_TOKEN}"@github.com/ecorp/private-one@1.0.0
}

func ExampleImage_UvPipInstall() {
	lastCommands(builder.Scratch().UvPipInstall([]string{"torch==2.7.1"}, builder.UvVersion("0.9.5")))
	// Output:
	// python -m pip install --no-cache-dir uv==0.9.5
	// uv pip install --python "$(command -v python)" --compile-bytecode --no-cache torch==2.7.1
}

func ExampleImage_UvSync() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "pyproject.toml"), []byte("[project]\nname = 'app'\n"), 0o644)
	p, err := builder.Scratch().UvSync(dir, builder.Groups("dev")).Plan(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	st := p.Steps[1]
	fmt.Println(st.Spec.Inputs[0].Name, st.Spec.Options["path_prepend"])
	// Output: /.strata/in/uv-project/pyproject.toml /.uv/.venv/bin
}

func ExampleImage_PoetryInstallFromFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	pp := filepath.Join(dir, "pyproject.toml")
	_ = os.WriteFile(pp, []byte("[tool.poetry]\nname = 'app'\n"), 0o644)
	_, err := builder.Scratch().PoetryInstallFromFile(pp).Plan(context.Background())
	fmt.Println(err != nil) // poetry.lock is missing
	_, err = builder.Scratch().PoetryInstallFromFile(pp, builder.IgnoreLockfile(), builder.PoetryWith("dev")).Plan(context.Background())
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

func ExampleImage_MicromambaInstall() {
	lastCommands(builder.Scratch().MicromambaInstall([]string{"pytorch"}, builder.Channels("pytorch", "conda-forge")))
	// Output: micromamba install -y -n base -c pytorch -c conda-forge pytorch && micromamba clean --all --yes
}

func ExampleMicromamba() {
	fmt.Println(builder.Micromamba("3.12").Err())
	fmt.Println(builder.Micromamba("2.7").Err())
	// Output:
	// <nil>
	// step 0 (Micromamba): unknown Python version "2.7": strata knows 3.9 to 3.14 (e.g. "3.13")
}

func ExampleDebianSlim() {
	fmt.Println(builder.DebianSlim("3.11").Err())
	fmt.Println(builder.DebianSlim("3.12", builder.UseDebianMirror("bookworm")).Err())
	// Output:
	// <nil>
	// step 0 (DebianSlim): Python 3.12 is not the Python of Debian bookworm (3.11): ask for 3.11, or use another suite
}

func ExampleDebianMirror() {
	img := builder.DebianMirror("bookworm",
		builder.Mirror("http://deb.debian.org/debian"),
		builder.Include("ca-certificates")).
		AptInstall([]string{"git"})
	fmt.Println(img.Err())
	// Output: <nil>
}

func ExampleImage_AddLocalPythonSource() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	_ = os.MkdirAll(filepath.Join(dir, "mypkg"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "mypkg", "__init__.py"), nil, 0o644)
	p, err := builder.Scratch().AddLocalPythonSource([]string{"mypkg"}, builder.PythonPath(dir), builder.Copy()).Plan(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Steps[1].Spec.Args[0], p.Steps[1].Spec.Ignore)
	// Output: /root/mypkg [** !**/*.py **/.* **/__pycache__]
}

// download is registered at package level, so the copy of the program that
// runs inside the build container has it too.
var download = builder.RegisterFunction("download-model", "v1", func(ctx context.Context, args []string) error {
	return os.WriteFile("/model.bin", []byte("weights for "+args[0]), 0o644)
})

func ExampleImage_RunFunction() {
	img := builder.DebianSlim("3.11").RunFunction(download, []string{"small"})
	fmt.Println(img.Err())
	// Output: <nil>
}

func ExampleRegisterFunction() {
	fmt.Println(download.Name())
	// Output: download-model
}

func ExampleGPU() {
	img := builder.DebianSlim("3.11").RunCommands([]string{"nvidia-smi"}, builder.GPU("H100:2"))
	fmt.Println(img.Err())
	fmt.Println(builder.Scratch().RunCommands([]string{"nvidia-smi"}, builder.GPU("H100:0")).Err() != nil)
	// Output:
	// <nil>
	// true
}

func ExampleImage_CopyLocalDir() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	p, _ := builder.Scratch().CopyLocalDir(dir, "/app").Plan(context.Background())
	fmt.Println(p.Steps[1].Method, p.Steps[1].Index)
	// Output: CopyLocalDir 1
}

func ExampleImage_CopyLocalFile() {
	fmt.Println(builder.Scratch().CopyLocalFile("", "/x").Err())
	// Output: step 1 (CopyLocalFile): local path is empty
}

func ExampleAddPython() {
	img := builder.FromRegistry("registry.example.com/team/debian:bookworm", builder.AddPython("3.11"))
	fmt.Println(img.Err())
	fmt.Println(builder.FromRegistry("debian", builder.AddPython("4.0")).Err())
	// Output:
	// <nil>
	// step 0 (FromRegistry): unknown Python version "4.0": strata knows 3.9 to 3.14 (e.g. "3.13")
}

func ExampleFromAWSECR() {
	aws := builder.SecretFromMap("aws", map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example",
	})
	img := builder.FromAWSECR("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/base:1", aws, builder.AddPython("3.11"))
	fmt.Println(img.Err())
	// Output: <nil>
}

func ExampleFromGCPArtifactRegistry() {
	_, err := builder.FromGCPArtifactRegistry("us-docker.pkg.dev/proj/repo/base:1", builder.SecretFromMap("gcp", nil)).Plan(context.Background())
	fmt.Println(err)
	// Output: step 0 (FromGCPArtifactRegistry): the secret holds no credentials
}

func ExampleSecretFromDotenv() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, ".env")
	_ = os.WriteFile(p, []byte("HF_TOKEN=hf_example\n"), 0o600)
	img := builder.Scratch().RunCommands([]string{"download"}, builder.WithSecrets(builder.SecretFromDotenv("hf", p)))
	plan, _ := img.Plan(context.Background())
	fmt.Println(plan.Steps[1].Spec.Secrets)
	// Output: [hf/HF_TOKEN]
}

// Reproducible images: the same definition built in two empty stores gives
// the same manifest digest.
func ExampleSourceDateEpoch() {
	res, err := builder.Build(context.Background(), builder.FromRegistry("debian:bookworm-slim").RunCommands([]string{"echo hi > /hi"}),
		builder.WithSession(builder.SourceDateEpoch(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.ManifestDigest)
}

func ExamplePush() {
	reg := builder.SecretFromEnv("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
	_, err := builder.Build(context.Background(), builder.FromRegistry("debian:bookworm-slim"),
		builder.Push("registry.example.com/team/app:1"), builder.PushAuth(reg), builder.LayerCompression("zstd"))
	fmt.Println(err != nil)
}
