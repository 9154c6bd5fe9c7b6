package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/runners"
)

// claim marks key k as running in this session and returns the func that
// releases it. When another build of the session runs k now, it returns
// instead a channel that is closed when that build is done with k.
func (s *Session) claim(k layers.Key) (release func(), busy <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.inflight[k]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	s.inflight[k] = ch
	return func() {
		s.mu.Lock()
		delete(s.inflight, k)
		s.mu.Unlock()
		close(ch)
	}, nil
}

// buildRun is the state of one Build that its steps share.
type buildRun struct {
	held  []func() // shared key locks of the entries in use
	pr    *progress
	rc    *remoteCache
	ms    *mountSync
	res   *Result
	built map[*Plan]string
}

// buildSteps builds the steps of p in order (first the images its steps
// copy from) and returns the last step's image ID ("" for a bare scratch).
// b.built remembers the plans already built in this Build.
func (s *Session) buildSteps(ctx context.Context, p *Plan, b *buildRun, name string) (string, error) {
	if id, ok := b.built[p]; ok {
		return id, nil
	}
	parentID := ""
	forced := false
	ex := s.newExplainer(p, name)
	for si, st := range p.Steps {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		start := time.Now()
		// A forced step forces every later step: their keys are unchanged,
		// but their parent is new. A step that ran on a plain miss needs no
		// such rule: later keys chain from its key, so any later entry that
		// still exists was built on identical inputs.
		forced = forced || st.Force
		id, cached, release := "", false, func() {}
		if st.base != nil && st.base.Kind == runners.BaseScratch {
			cached = true // nothing to import or record
		} else if !forced {
			var err error
			if id, cached, release, err = s.acquire(ctx, st, b); err != nil {
				return "", err
			}
		}
		remote := false
		if !cached {
			var err error
			id, remote, err = s.runStep(ctx, b, ex, si, &st, parentID, forced, release)
			if err != nil {
				return "", err
			}
		}
		d := time.Since(start)
		if remote {
			b.pr.remote(st, d)
		} else {
			b.pr.done(st, cached, d)
		}
		b.res.Steps = append(b.res.Steps, StepResult{
			Index: st.Index, Method: st.Method, Description: st.Description,
			Key: st.Key, Cached: cached, Remote: remote, ImageID: id, Duration: d, Reason: st.why,
		})
		parentID = id
	}
	b.built[p] = parentID
	return parentID, nil
}

// acquire takes st's cache entry under a shared key lock (held until the
// build ends, so that a prune leaves it alone) and returns its image ID;
// or, on a miss, claims st's key in the session and in the store and
// returns the func that releases both. When another build of the session
// runs st now, it waits for that build and takes its result.
func (s *Session) acquire(ctx context.Context, st PlannedStep, b *buildRun) (id string, cached bool, release func(), err error) {
	for {
		unshare, err := s.rt.ShareKey(ctx, st.Key.Hex())
		if err != nil {
			return "", false, nil, fmt.Errorf("%s: %w", st.Name(), err)
		}
		e, err := s.cache.Get(ctx, st.Key)
		if err == nil {
			b.held = append(b.held, unshare)
			return e.ImageID, true, nil, nil
		}
		unshare()
		if !errors.Is(err, layers.ErrNotFound) {
			return "", false, nil, fmt.Errorf("%s: %w", st.Name(), err)
		}
		rel, busy := s.claim(st.Key)
		if busy == nil {
			// Other processes on this store take the same key lock; one
			// that held it may have recorded the entry.
			unlock, err := s.rt.LockKey(ctx, st.Key.Hex())
			if err != nil {
				rel()
				return "", false, nil, fmt.Errorf("%s: %w", st.Name(), err)
			}
			if _, err := s.cache.Get(ctx, st.Key); err == nil {
				// Recorded meanwhile: take it under a shared lock.
				unlock()
				rel()
				continue
			}
			return "", false, func() { unlock(); rel() }, nil
		}
		select {
		case <-ctx.Done():
			return "", false, nil, ctx.Err()
		case <-busy:
		}
	}
}

// runStep makes st's image on a miss, on parentID: from the remote cache,
// or by importing the base or executing the step; it records the result
// in the cache and queues its push. release gives back st's key claim.
func (s *Session) runStep(ctx context.Context, b *buildRun, ex *explainer, si int, st *PlannedStep, parentID string, forced bool, release func()) (id string, remote bool, err error) {
	defer release()
	// Hold the entry this step records for the rest of the build, before
	// it can be seen: a prune leaves it alone.
	unshare, err := s.rt.ShareKey(ctx, st.Key.Hex())
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", st.Name(), err)
	}
	b.held = append(b.held, unshare)
	// Remote cache hit (remotecache.go): pulled and recorded, not run.
	if rid, ok := b.rc.fetch(ctx, *st, forced); ok {
		ex.record(si)
		return rid, true, nil
	}
	// Why it runs (explain.go), for the progress line and result.
	if st.why = ex.forced(si); st.why == "" {
		st.why = ex.why(si)
	}
	ex.ran(si)
	b.pr.start(*st)
	if st.base != nil {
		// A pull reports in strata's words; a Debian bootstrap shows
		// mmdebstrap's output as a step shows its commands'.
		w := b.pr.transferWriter(*st)
		if st.base.Kind == runners.BaseDebian {
			w = b.pr.stepWriter(*st, nil)
		}
		id, err = s.rt.ImportBase(ctx, *st.base, st.Spec.Args[0], w)
		flushOutput(w)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", st.Name(), err)
		}
	} else if id, err = s.execute(ctx, b, *st, parentID); err != nil {
		return "", false, err
	}
	runners.Failpoint("before-record")
	if id != "" {
		if err := s.cache.Put(ctx, st.Key, layers.Entry{ImageID: id}); err != nil {
			return "", false, fmt.Errorf("%s: %w", st.Name(), err)
		}
		runners.Failpoint("after-record")
		ex.record(si)
		b.rc.store(*st, id) // background push to CacheTo (remotecache.go)
	}
	return id, false, nil
}

// execute runs st's runner step on parentID, with what only a build
// supplies: the images it copies from or mounts (built now, on a miss),
// the environment that stays out of its key, restored cache mounts,
// secrets, and its output.
func (s *Session) execute(ctx context.Context, b *buildRun, st PlannedStep, parentID string) (string, error) {
	rs := st.run
	var ids []string
	if len(st.deps) > 0 {
		ids = make([]string, len(st.deps))
		for i, dp := range st.deps {
			did, err := s.buildSteps(ctx, dp, b, "")
			if err != nil {
				return "", err
			}
			if did == "" {
				return "", fmt.Errorf("%s: the image it copies from is empty (scratch)", st.Name())
			}
			ids[i] = did
		}
		rs.Copies = slices.Clone(rs.Copies)
		for ci, di := range st.fromDep {
			rs.Copies[ci].FromImage = ids[di]
		}
		rs.Mounts = slices.Clone(rs.Mounts)
		for mi, di := range st.mountDep {
			rs.Mounts[mi].FromImage = ids[di]
		}
	}
	rs.RunEnv = append(slices.Clone(rs.RunEnv), st.unkeyedEnv...)
	if err := s.seedCacheMounts(st, ids); err != nil {
		return "", fmt.Errorf("%s: %w", st.Name(), err)
	}
	if err := materialize(ctx, st); err != nil {
		return "", fmt.Errorf("%s: %w", st.Name(), err)
	}
	b.ms.prepare(ctx, st) // restore cache mounts (mountcache.go)
	cleanup, err := secretMounts(st, &rs)
	if err != nil {
		return "", err
	}
	defer cleanup()
	red := redactorFor(append(slices.Clone(st.secrets), st.fileSecrets()...))
	rs.Output = b.pr.stepWriter(st, red)
	defer flushOutput(rs.Output) // a last line without a newline
	for _, sec := range st.secrets {
		for _, k := range sec.keys() {
			rs.RunEnv = append(rs.RunEnv, k+"="+sec.env[k])
		}
	}
	runners.Failpoint("step")
	id, err := s.rt.Execute(ctx, parentID, rs)
	if err != nil {
		return "", red.err(err)
	}
	return id, nil
}

// secretMounts writes the files of a step's RUN --mount=type=secret
// mounts into a private temporary directory and mounts them; the returned
// func removes them. Values come from the step's secrets, by key.
func secretMounts(st PlannedStep, rs *runners.Step) (func(), error) {
	if len(st.secretMounts) == 0 {
		return func() {}, nil
	}
	var dir string
	cleanup := func() {
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}
	rs.Mounts = slices.Clone(rs.Mounts)
	for _, m := range st.secretMounts {
		val, found := "", false
		from := st.secrets
		if m.secret != nil {
			from = []Secret{*m.secret}
		}
		for _, sec := range from {
			if v, ok := sec.env[m.id]; ok {
				val, found = v, true
			}
		}
		if !found {
			if m.secret != nil {
				cleanup()
				return nil, fmt.Errorf("%s: SecretFile: the secret %s holds no key %s", st.Name(), m.secret.name, m.id)
			}
			if m.required {
				cleanup()
				return nil, fmt.Errorf("%s: secret %q is required but not given: give it with --secret id=%s[,src=FILE|,env=VAR] (strata build), or builder.WithSecrets with a secret holding the key %s", st.Name(), m.id, m.id, m.id)
			}
			continue
		}
		if m.env != "" {
			rs.RunEnv = append(rs.RunEnv, m.env+"="+val)
		}
		if m.target == "" {
			continue
		}
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", fmt.Sprintf("strata-secret-%d-", os.Getpid())); err != nil {
				return nil, fmt.Errorf("%s: secret mount: %w", st.Name(), err)
			}
		}
		mode := os.FileMode(0o400)
		if m.mode != nil {
			mode = os.FileMode(*m.mode)
		}
		f := filepath.Join(dir, strconv.Itoa(len(rs.Mounts)))
		if err := os.WriteFile(f, []byte(val), mode|0o200); err != nil {
			cleanup()
			return nil, fmt.Errorf("%s: secret mount: %w", st.Name(), err)
		}
		_ = os.Chmod(f, mode)
		if m.uid != nil || m.gid != nil {
			uid, gid := ownerIDs(m.uid, m.gid)
			_ = os.Lchown(f, uid, gid)
		}
		rs.Mounts = append(rs.Mounts, runners.Mount{Src: f, Dest: m.target})
	}
	return cleanup, nil
}

// materialize makes on the host what st reads from it and planning only
// named: its cache mount directories (with the mount's owner and mode,
// the first time), its heredoc files and its ADD URL downloads.
func materialize(ctx context.Context, st PlannedStep) error {
	for _, f := range st.downloads {
		if err := f.fetch(ctx); err != nil {
			return err
		}
	}
	for _, c := range st.cacheMounts {
		if err := makeCacheMountDir(c); err != nil {
			return err
		}
	}
	for _, v := range st.volumes {
		if err := os.MkdirAll(v, 0o755); err != nil {
			return fmt.Errorf("volume %s: %w", filepath.Base(v), err)
		}
	}
	for _, in := range st.inlines {
		file := filepath.Join(in.dir, in.name)
		if _, err := os.Stat(file); err == nil {
			continue
		}
		if err := os.MkdirAll(in.dir, 0o755); err != nil {
			return fmt.Errorf("heredoc %s: %w", in.name, err)
		}
		tmp := file + ".tmp" + strconv.Itoa(os.Getpid())
		if err := os.WriteFile(tmp, []byte(in.data), 0o644); err != nil {
			return fmt.Errorf("heredoc %s: %w", in.name, err)
		}
		if err := os.Rename(tmp, file); err != nil {
			return fmt.Errorf("heredoc %s: %w", in.name, err)
		}
	}
	return nil
}

// makeCacheMountDir makes c's directory when it does not exist, with the
// mount's mode and owner.
func makeCacheMountDir(c cacheMountDir) error {
	if err := os.MkdirAll(filepath.Dir(c.dir), 0o700); err != nil {
		return fmt.Errorf("cache mount %s: %w", c.id, err)
	}
	err := os.Mkdir(c.dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache mount %s: %w", c.id, err)
	}
	if c.mode != nil {
		_ = os.Chmod(c.dir, os.FileMode(*c.mode))
	}
	if c.uid != nil || c.gid != nil {
		uid, gid := ownerIDs(c.uid, c.gid)
		if err := os.Lchown(c.dir, uid, gid); err != nil {
			return fmt.Errorf("cache mount %s: setting its owner: %w", c.id, err)
		}
	}
	return nil
}

// ownerIDs gives a mount's uid and gid as os.Lchown takes them (-1: keep).
func ownerIDs(uid, gid *uint64) (int, int) {
	u, g := -1, -1
	if uid != nil {
		u = int(*uid)
	}
	if gid != nil {
		g = int(*gid)
	}
	return u, g
}

// fileSecrets are the secrets of the step's SecretFile mounts.
func (st PlannedStep) fileSecrets() []Secret {
	var out []Secret
	for _, m := range st.secretMounts {
		if m.secret != nil {
			out = append(out, *m.secret)
		}
	}
	return out
}

// seedCacheMounts fills each new cache mount of st that names a stage or
// image (from=) with the files at its source there, before the step runs;
// a cache that exists is left as it is. The copy is made beside the cache
// and renamed into place, so a cache is never half seeded.
func (s *Session) seedCacheMounts(st PlannedStep, ids []string) error {
	for _, c := range st.cacheMounts {
		if !c.seed {
			continue
		}
		if _, err := os.Stat(c.dir); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(c.dir), 0o700); err != nil {
			return fmt.Errorf("cache mount %s: %w", c.id, err)
		}
		tmp, err := os.MkdirTemp(filepath.Dir(c.dir), filepath.Base(c.dir)+".seed-")
		if err != nil {
			return fmt.Errorf("cache mount %s: %w", c.id, err)
		}
		err = s.rt.CopyFromImage(ids[c.seedDep], c.seedSrc, tmp)
		if err == nil {
			if err = os.Rename(tmp, c.dir); errors.Is(err, os.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
				err = nil // another build seeded it first
			}
		}
		if err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("cache mount %s: seeding it from %s: %w", c.id, c.seedSrc, err)
		}
	}
	return nil
}
