// Package spec reads image definitions from a small declarative file, YAML
// or JSON, that maps 1:1 onto package builder's chain methods.
//
// A spec has a base and a list of steps. Each step is a mapping with one
// method key (the builder method in snake case) and, depending on the
// method, option keys. Relative paths are resolved against the directory
// given to Parse (strata build uses the spec file's directory).
//
//	base: {from_registry: "debian:bookworm"}
//	steps:
//	  - apt_install: [git, curl]
//	  - run_commands: ["echo hi > /hi"]
//	    env: {MODE: ci}           # WithEnv
//	    force_build: true         # ForceBuild
//	    gpu: "any"                # GPU("any"); or a list: ["H100", "A100"]
//	    secrets: [GIT_TOKEN]      # WithSecrets(SecretFromEnv("GIT_TOKEN"))
//	  - pip_install: [numpy, "pandas>=2"]
//	    index_url: https://pypi.example.com/simple
//	  - pip_install_from_requirements: requirements.txt
//	  - env: {A: "1"}
//	  - workdir: /app
//	  - add_local_dir: {local: ., remote: /app, copy: true, ignore: ["*.pyc"]}
//	  - add_local_file: {local: config.toml, remote: /etc/app/config.toml}
//	  - dockerfile_commands: ["RUN echo hi"]
//	  - entrypoint: ["/bin/sh", "-c"]
//	  - cmd: ["/app/run.sh"]
//
// # Bases (exactly one)
//
//	scratch: true
//	from_registry: REF                 # or {ref: REF, add_python: "3.12", registry_auth_from_env: true}
//	from_archive: PATH                 # FromArchive
//	from_oci_layout: DIR               # FromOCILayout ("dir:tag" picks one image)
//	from_id: ID                        # FromID, an image already in the store
//	debian_slim: "3.12"                # or {python: "3.12", registry_auth_from_env: true,
//	                                   #     use_debian_mirror: {suite: bookworm, ...}}
//	micromamba: "3.12"                 # or {python: "3.12", registry_auth_from_env: true}
//	debian_mirror: bookworm            # or {suite: bookworm, mirror: URL, snapshot: 2024-05-01T00:00:00Z,
//	                                   #     include: [ca-certificates], apt_options: [...]}
//	from_dockerfile: PATH              # or {path: Dockerfile, context: ., build_args: {K: V},
//	                                   #     target: stage, ignore: [...], add_python: "3.12"}
//
// registry_auth_from_env pulls with WithRegistryAuth(SecretFromEnv(
// "REGISTRY_USERNAME", "REGISTRY_PASSWORD")).
//
// # Steps
//
//	run_commands: [CMD, ...]                        RunCommands
//	apt_install: [PKG, ...]                         AptInstall
//	pip_install: [PKG, ...]                         PipInstall
//	pip_install_from_requirements: PATH             PipInstallFromRequirements
//	pip_install_from_pyproject: PATH                PipInstallFromPyproject
//	pip_install_private_repos: {repos: [...], git_user: U}   PipInstallPrivateRepos
//	uv_pip_install: [PKG, ...]                      UvPipInstall
//	uv_sync: DIR                                    UvSync
//	poetry_install_from_file: PATH                  PoetryInstallFromFile
//	micromamba_install: [PKG, ...]                  MicromambaInstall
//	env: {K: V}                                     Env
//	workdir: DIR                                    Workdir
//	entrypoint: [ARG, ...]                          Entrypoint
//	cmd: [ARG, ...]                                 Cmd
//	shell: [ARG, ...]                               Shell (not a step: changes later run_commands)
//	add_local_dir: {local: DIR, remote: DIR, copy: BOOL, ignore: [PATTERN, ...]}   AddLocalDir
//	add_local_file: {local: FILE, remote: PATH, copy: BOOL}                        AddLocalFile
//	add_local_python_source: [MODULE, ...]          AddLocalPythonSource; or
//	    {modules: [...], python_path: [DIR, ...], copy: BOOL, ignore: [...]}
//	dockerfile_commands: [INSTRUCTION, ...]         DockerfileCommands
//
// Options:
//
//	force_build: BOOL          every step but shell
//	env: {K: V}                run_commands, package steps, dockerfile_commands (WithEnv)
//	gpu: TYPE | [TYPE, ...]    the same (GPU)
//	secrets: [VAR, ...]        the same (WithSecrets(SecretFromEnv(VAR, ...))): the
//	                           values come from strata's own environment
//	find_links, index_url, extra_index_url, uv_version, poetry_version: STRING
//	pre, frozen, ignore_lockfile, old_installer: BOOL
//	extra_options, groups, extras, poetry_with, poetry_without, poetry_only,
//	channels, optional_dependencies: [STRING, ...]
//	requirements: [PATH, ...]; lockfile, spec_file: PATH
//	                           package steps (the package options of the same
//	                           names; one that does not apply to the step is an error)
//	context_dir: DIR, build_args: {K: V}, context_files: {NAME: PATH}, ignore: [...]
//	                           dockerfile_commands
//
// Top-level keys starting with "x-" are ignored: they can hold YAML anchors
// that steps refer to (env: *common).
//
// A step that holds only env is the Env step; with a method key, env is
// that step's WithEnv.
//
// # Errors
//
// Unknown keys, keys given twice, values of the wrong type and invalid
// arguments are errors of type *Error that name the file, the step (numbered
// from 1, as builder numbers steps after the base) and the line:
//
//	spec.yaml: step 3 (apt_install): line 9: unknown key "pakages" (known: ...)
//
// A JSON file that is not valid JSON gets a JSON error with line and column.
package spec
