package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratabuild/strata/builder"
	"github.com/stratabuild/strata/pkg/imagediff"
	"github.com/stratabuild/strata/runners"
)

// TestDirectRunMatchesBuildah: RUN steps run through strata's own `runc
// run` give the image Buildah's Run gives (STRATA_BUILDAH_RUN=1), file for
// file, with modes and owners, and the same layer entries: a user from
// /etc/passwd with its groups, a numeric user, a missing working directory
// made for the user, files written under /etc and /run beside the files
// the runtime binds there, a deletion, a no-network step, and what the
// commands see (user, groups, cwd, hostname, environment, /etc/hosts,
// capabilities); and no layer holds the files the runtime bound over
// /etc and /run, nor those directories where the step wrote nothing.
func TestDirectRunMatchesBuildah(t *testing.T) {
	requireRootless(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "Dockerfile"), `FROM base
RUN echo 'app:x:1000:1000:App:/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && echo 'extra:x:2000:app' >> /etc/group && mkdir -p /home/app && chown 1000:1000 /home/app
ENV GREETING=hello
USER app
WORKDIR /home/app/work/deeper
RUN (id | grep -q 'uid=1000(app)' && id | grep -q '2000(extra)' && echo id-ok || id) > out.id && pwd > out.pwd && echo "$GREETING $HOME" > out.env
USER 0
RUN mkdir -p /run/mine && echo x > /run/mine/file && echo y > /etc/written && rm /bin/cmp
RUN --mount=type=cache,target=/root/.cache/tool --mount=type=tmpfs,target=/var/scratch/t echo c > /root/.cache/tool/c && echo s > /var/scratch/t/s && echo kept > /var/kept
RUN (grep -q 'engine="strata"' /run/.containerenv && echo direct || echo buildah) > /which
RUN grep -c CapEff /proc/self/status > /caps && cat /etc/hostname | wc -c > /hostname-len && test -s /etc/hosts && echo hosts-ok > /hosts
USER 4242
WORKDIR /tmp/numeric
RUN id -u > /tmp/numeric/uid && id -g >> /tmp/numeric/uid
USER 0
`)
	df := builder.FromDockerfile(filepath.Join(src, "Dockerfile"), builder.BuildContext("base", builder.FromArchive(busyboxTar(t))))
	writeFile(t, filepath.Join(src, "nonet", "Dockerfile"), "FROM base\nRUN --network=none grep -c : /proc/net/dev > /ifaces\n")
	noNet := builder.FromDockerfile(filepath.Join(src, "nonet", "Dockerfile"), builder.BuildContext("base", builder.FromArchive(busyboxTar(t))))

	for _, c := range []struct {
		name string
		img  builder.Image
	}{{"dockerfile", df}, {"no network", noNet}} {
		t.Run(c.name, func(t *testing.T) {
			direct, plain, a, b := bothWays(t, c.img, runners.BuildahRunEnv)
			if ds := imagediff.Compare(a, b, imagediff.Options{IgnorePaths: []string{"which"}}); len(ds) > 0 {
				t.Errorf("direct and Buildah runs differ:\n%v", ds)
			}
			la, lb := layerEntries(t, direct), layerEntries(t, plain)
			if len(la) != len(lb) {
				t.Fatalf("%d layers direct, %d through Buildah", len(la), len(lb))
			}
			// Every file, link and whiteout of every layer is the same.
			// Directory entries are not compared: Buildah's commit leaves
			// out a directory the step wrote into when it also made a
			// mount target there, and keeps one it only made a target in.
			for i := range la {
				if fa, fb := nonDirs(la[i]), nonDirs(lb[i]); !slices.Equal(fa, fb) && !slices.ContainsFunc(fa, func(e string) bool { return strings.HasPrefix(e, "which ") }) {
					t.Errorf("layer %d's entries differ:\ndirect %q\nbuildah %q", i, fa, fb)
				}
			}
			for i, l := range la[1:] {
				for _, e := range l {
					name := strings.Fields(e)[0]
					for _, bound := range []string{"etc/hosts", "etc/hostname", "etc/resolv.conf", "run/.containerenv"} {
						if name == bound {
							t.Errorf("layer %d holds %s, which the runtime bound", i+1, name)
						}
					}
					// A step that wrote nothing under /etc or /run has
					// no entry for them: the mount targets made there
					// are gone, parents included.
					if (name == "etc/" || name == "run/") && !slices.ContainsFunc(l, func(o string) bool {
						return o != e && strings.HasPrefix(o, name)
					}) {
						t.Errorf("layer %d holds %s, where the step wrote nothing: %q", i+1, name, l)
					}
				}
			}
			if c.name != "dockerfile" {
				if got := a.Files["ifaces"].Digest; got != contentDigest("1\n") {
					t.Errorf("a no-network step sees more than lo (/ifaces %s)", got)
				}
				return
			}
			// Each build ran its commands the way it was asked to.
			if a.Files["which"].Digest != contentDigest("direct\n") || b.Files["which"].Digest != contentDigest("buildah\n") {
				t.Errorf("the builds did not run their commands through runc and Buildah's Run, one each")
			}
			want := map[string]string{
				"home/app/work/deeper/out.pwd": "/home/app/work/deeper\n",
				"home/app/work/deeper/out.env": "hello /home/app\n",
				"tmp/numeric/uid":              "4242\n0\n",
				"hosts":                        "hosts-ok\n",
				"run/mine/file":                "x\n",
				"etc/written":                  "y\n",
				"home/app/work/deeper/out.id":  "id-ok\n",
			}
			for p, w := range want {
				if got := a.Files[p].Digest; got != contentDigest(w) {
					t.Errorf("/%s is not %q (digest %s)", p, w, got)
				}
			}
			if f := a.Files["home/app/work"]; f.UID != 1000 || f.GID != 1000 {
				t.Errorf("the working directory made for app is owned %d:%d", f.UID, f.GID)
			}
			if _, ok := a.Files["bin/cmp"]; ok {
				t.Error("/bin/cmp survived its rm")
			}
		})
	}
}

// contentDigest is the digest imagediff gives a regular file holding s.
func contentDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// nonDirs is entries (layerEntries lines) without the directories.
func nonDirs(entries []string) []string {
	var out []string
	for _, e := range entries {
		if f := strings.Fields(e); len(f) > 1 && f[1] != "5" {
			out = append(out, e)
		}
	}
	return out
}

// bothWays builds img into an OCI layout twice, on fresh stores, with the
// environment variable env (one of strata's switches to Buildah's own
// path) unset and then set to 1; it returns both layouts and their images.
func bothWays(t *testing.T, img builder.Image, env string) (direct, plain string, a, b *imagediff.Image) {
	t.Helper()
	layouts := make([]string, 2)
	images := make([]*imagediff.Image, 2)
	for i, v := range []string{"", "1"} {
		t.Setenv(env, v)
		s := openSession(t)
		layouts[i] = filepath.Join(t.TempDir(), "layout")
		if _, err := s.Build(context.Background(), img, builder.ExportTo("oci:"+layouts[i]+":latest"), builder.LayerCompression("none")); err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
		var err error
		if images[i], err = imagediff.Load(layouts[i], "latest"); err != nil {
			t.Fatalf("%s=%q: the image does not read back: %v", env, v, err)
		}
	}
	return layouts[0], layouts[1], images[0], images[1]
}
