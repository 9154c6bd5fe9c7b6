// The strata command enters its user namespace here, before the Go
// runtime starts (see userns.go).

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "userns.h"

// strata_read_ranges reads the ranges of /etc/subuid or /etc/subgid whose
// first field is name or uid (as containers/storage's parser does), sorted
// by start. It returns their number, or -1 when the file cannot be read or
// parsed, or holds more ranges than the command takes.
int strata_read_ranges(const char *path, const char *name, const char *uid, struct strata_range *out)
{
	FILE *f = fopen(path, "re");
	char line[512];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = line, *e, *who, *start, *count, *end;
		size_t len = strlen(line);

		if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
			n = -1; // a line longer than the buffer
			break;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		who = s;
		start = strchr(who, ':');
		if (start == NULL) {
			n = -1;
			break;
		}
		*start++ = '\0';
		count = strchr(start, ':');
		if (count == NULL || strchr(count + 1, ':') != NULL) {
			n = -1;
			break;
		}
		*count++ = '\0';
		if (strcmp(who, name) != 0 && strcmp(who, uid) != 0)
			continue;
		if (!isdigit((unsigned char)start[0]) || !isdigit((unsigned char)count[0])) {
			n = -1; // a sign or a space: the Go parser's business
			break;
		}
		if (n == STRATA_MAX_RANGES) {
			n = -1;
			break;
		}
		errno = 0;
		out[n].start = strtoul(start, &end, 10);
		if (errno != 0 || *start == '\0' || *end != '\0') {
			n = -1;
			break;
		}
		out[n].count = strtoul(count, &end, 10);
		if (errno != 0 || *count == '\0' || *end != '\0' || out[n].count == 0) {
			n = -1;
			break;
		}
		n++;
	}
	fclose(f);
	for (int i = 1; i < n; i++) { // insertion sort: a handful of ranges
		struct strata_range r = out[i];
		int j = i - 1;
		while (j >= 0 && (out[j].start > r.start || (out[j].start == r.start && out[j].count > r.count))) {
			out[j + 1] = out[j];
			j--;
		}
		out[j + 1] = r;
	}
	return n;
}

// strata_in_path reports whether prog is an executable file in a directory
// of $PATH.
static int strata_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);

		if (len > 0 && len + strlen(prog) + 2 < sizeof(buf)) {
			memcpy(buf, path, len);
			buf[len] = '/';
			strcpy(buf + len + 1, prog);
			if (access(buf, X_OK) == 0)
				return 1;
		}
		if (colon == NULL)
			break;
		path = colon + 1;
	}
	return 0;
}

// strata_write_file writes s to the file path (a /proc file of the ID maps).
static int strata_write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(s), w;

	if (fd < 0)
		return -1;
	w = write(fd, s, len);
	close(fd);
	return w == len ? 0 : -1;
}

// strata_spawn starts argv (found in $PATH) and returns its PID, or -1.
// vfork: the child only executes (a fork would first copy the page tables
// of this 50 MB program, about 2.5 ms here).
static pid_t strata_spawn(char **argv)
{
	pid_t pid = vfork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

// strata_map_args builds "<tool> <pid> 0 <id> 1 1 <start> <count> ..." in
// words, the numbers written in buf (a word each).
static void strata_map_args(char **words, char (*buf)[24], const char *tool, pid_t pid, unsigned long id,
			    const struct strata_range *r, int n)
{
	unsigned long nums[4 + 3 * STRATA_MAX_RANGES], next = 1;
	int k = 0;

	nums[k++] = (unsigned long)pid;
	nums[k++] = 0;
	nums[k++] = id;
	nums[k++] = 1;
	for (int i = 0; i < n; i++) {
		nums[k++] = next;
		nums[k++] = r[i].start;
		nums[k++] = r[i].count;
		next += r[i].count;
	}
	words[0] = (char *)tool;
	for (int i = 0; i < k; i++) {
		snprintf(buf[i], sizeof(buf[i]), "%lu", nums[i]);
		words[i + 1] = buf[i];
	}
	words[k + 1] = NULL;
}

// strata_helper runs in a child of the command, in the user namespace the
// command was started in: once the command has made its own namespace
// (a byte on ready), it maps the IDs with newgidmap and newuidmap (at the
// same time), falling back to a single mapping of the user's own IDs
// where one of them fails (as containers/storage does). Its exit status
// says whether the maps were written.
static void strata_helper(int ready, pid_t target, uid_t uid, gid_t gid, const struct strata_range *ur, int nu,
			  const struct strata_range *gr, int ng)
{
	char path[64], c, line[64];
	char *uwords[8 + 3 * STRATA_MAX_RANGES], *gwords[8 + 3 * STRATA_MAX_RANGES];
	static char ubuf[8 + 3 * STRATA_MAX_RANGES][24], gbuf[8 + 3 * STRATA_MAX_RANGES][24];
	pid_t up, gp;
	int ust = -1, gst = -1, ok = 1;

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (read(ready, &c, 1) != 1)
		_exit(1); // the command did not make its namespace
	snprintf(path, sizeof(path), "/proc/%ld/setgroups", (long)target);
	if (strata_write_file(path, "allow") != 0)
		_exit(1);
	strata_map_args(gwords, gbuf, "newgidmap", target, gid, gr, ng);
	strata_map_args(uwords, ubuf, "newuidmap", target, uid, ur, nu);
	gp = strata_spawn(gwords);
	up = strata_spawn(uwords);
	if (gp > 0 && waitpid(gp, &gst, 0) != gp)
		gst = -1;
	if (up > 0 && waitpid(up, &ust, 0) != up)
		ust = -1;
	if (gp <= 0 || !WIFEXITED(gst) || WEXITSTATUS(gst) != 0) {
		fprintf(stderr, "strata: newgidmap failed: falling back to a single GID mapping\n");
		snprintf(path, sizeof(path), "/proc/%ld/setgroups", (long)target);
		snprintf(line, sizeof(line), "0 %lu 1\n", (unsigned long)getegid());
		if (strata_write_file(path, "deny") != 0)
			ok = 0;
		snprintf(path, sizeof(path), "/proc/%ld/gid_map", (long)target);
		if (ok && strata_write_file(path, line) != 0)
			ok = 0;
	}
	if (up <= 0 || !WIFEXITED(ust) || WEXITSTATUS(ust) != 0) {
		fprintf(stderr, "strata: newuidmap failed: falling back to a single UID mapping\n");
		snprintf(path, sizeof(path), "/proc/%ld/uid_map", (long)target);
		snprintf(line, sizeof(line), "0 %lu 1\n", (unsigned long)geteuid());
		if (strata_write_file(path, line) != 0)
			ok = 0;
	}
	_exit(ok ? 0 : 1);
}

// strata_guard_wait is the waiting part of the build guard (runners'
// guard.go: the copy of the program named "strata-guard" that a build
// starts, which cleans up after the build if it dies). The guard spends
// its life blocked on a pipe and almost always reads the byte that says
// the build closed cleanly; waiting here, before the Go runtime starts,
// spares every build the start of a second Go program. On anything else
// (end of file: the build died) the Go guard starts and does its work.
static void strata_guard_wait(void)
{
	char name[32] = {0}, b;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, name, sizeof(name) - 1);
	close(fd);
	if (n <= 0 || strcmp(name, STRATA_GUARD_COMMAND) != 0)
		return;
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	do
		n = read(3, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && b == STRATA_GUARD_QUIT)
		_exit(0);
}

// strata_is_test reports whether this is the package's test binary
// ("strata.test"), which keeps the Go way, as every other test does.
static int strata_is_test(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 5)
		return 0;
	exe[n] = '\0';
	return strcmp(exe + n - 5, ".test") == 0;
}

static void strata_die(const char *what)
{
	fprintf(stderr, "strata: entering the user namespace: %s: %s\n", what, strerror(errno));
	_exit(125);
}

// strata_enter_userns runs before the Go runtime. For an ordinary user it
// moves this process into a new user namespace (the user's ID as 0, then
// the /etc/subuid and /etc/subgid ranges, as containers/storage maps them)
// and a new mount namespace, and executes the program again there with
// the environment containers/storage's re-execution gives its copy. The
// Go code's own re-execution (runners.InitReexec) then finds it done. Where
// anything it needs is missing (no ranges, no newuidmap, an unreadable
// file) it returns before changing anything, and the Go code does it the
// usual way, with its own messages. STRATA_GO_START=1 asks for the Go way
// (here and for the guard).
__attribute__((constructor)) static void strata_enter_userns(void)
{
	struct strata_range ur[STRATA_MAX_RANGES], gr[STRATA_MAX_RANGES];
	char uidstr[24], gidstr[24], exe[PATH_MAX], c = 1;
	const char *go_start = getenv("STRATA_GO_START");
	struct passwd *pw;
	uid_t uid = getuid();
	gid_t gid;
	int nu, ng, ready[2], st;
	ssize_t n;
	pid_t helper;

	if (go_start != NULL && strcmp(go_start, "1") == 0)
		return;
	strata_guard_wait();
	if (strata_is_test())
		return;
	if (uid == 0 || geteuid() != uid || getenv("_CONTAINERS_USERNS_CONFIGURED") != NULL ||
	    getenv("_Containers-unshare") != NULL)
		return;
	pw = getpwuid(uid);
	if (pw == NULL || pw->pw_name == NULL)
		return;
	gid = pw->pw_gid;
	snprintf(uidstr, sizeof(uidstr), "%lu", (unsigned long)uid);
	snprintf(gidstr, sizeof(gidstr), "%lu", (unsigned long)getegid());
	nu = strata_read_ranges("/etc/subuid", pw->pw_name, uidstr, ur);
	ng = strata_read_ranges("/etc/subgid", pw->pw_name, uidstr, gr);
	if (nu <= 0 || ng <= 0 || !strata_in_path("newuidmap") || !strata_in_path("newgidmap"))
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	if (pipe2(ready, O_CLOEXEC) != 0)
		return;
	helper = fork();
	if (helper < 0) {
		close(ready[0]);
		close(ready[1]);
		return;
	}
	if (helper == 0) {
		close(ready[1]);
		strata_helper(ready[0], getppid(), uid, gid, ur, nu, gr, ng);
	}
	close(ready[0]);
	if (unshare(CLONE_NEWUSER) != 0) {
		// Nothing changed: the Go code tries again and says why it fails.
		close(ready[1]);
		waitpid(helper, NULL, 0);
		return;
	}
	if (write(ready[1], &c, 1) != 1)
		strata_die("signalling the mapping helper");
	close(ready[1]);
	if (waitpid(helper, &st, 0) != helper || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		errno = EPERM;
		strata_die("writing the ID maps");
	}
	if (setresgid(0, 0, 0) != 0)
		strata_die("setresgid(0)");
	if (setresuid(0, 0, 0) != 0)
		strata_die("setresuid(0)");
	if (unshare(CLONE_NEWNS) != 0)
		strata_die("unshare(CLONE_NEWNS)");
	// What containers/storage's copy finds in its environment, and what
	// runners.InitReexec sets before it re-executes.
	if (setenv("_CONTAINERS_USERNS_CONFIGURED", "done", 1) != 0 ||
	    setenv("_CONTAINERS_ROOTLESS_UID", uidstr, 1) != 0 ||
	    setenv("_CONTAINERS_ROOTLESS_GID", gidstr, 1) != 0 ||
	    (getenv("BUILDAH_ISOLATION") == NULL && setenv("BUILDAH_ISOLATION", "rootless", 1) != 0) ||
	    (getenv("_STRATA_EXECUTABLE") == NULL && setenv("_STRATA_EXECUTABLE", exe, 1) != 0))
		strata_die("setenv");
	{
		// The arguments as given, read back from /proc (a constructor is
		// not handed argv portably).
		size_t len = 0, size = 1 << 16;
		char *args = malloc(size), **argv;
		int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC), argc = 0;

		if (fd < 0 || args == NULL)
			strata_die("reading /proc/self/cmdline");
		for (;;) {
			if (len + 1 >= size) {
				char *more = realloc(args, size *= 2);
				if (more == NULL)
					strata_die("reading /proc/self/cmdline");
				args = more;
			}
			n = read(fd, args + len, size - 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(fd);
		if (n < 0 || len == 0)
			strata_die("reading /proc/self/cmdline");
		args[len] = '\0';
		argv = calloc(len + 2, sizeof(char *));
		if (argv == NULL)
			strata_die("reading /proc/self/cmdline");
		for (size_t i = 0; i < len; i += strlen(args + i) + 1)
			argv[argc++] = args + i;
		argv[argc] = NULL;
		execv("/proc/self/exe", argv);
		strata_die("executing /proc/self/exe");
	}
}
