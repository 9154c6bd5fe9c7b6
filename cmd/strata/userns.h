// Shared by userns.c and userns.go's preamble.

// runners.GuardCommand and runners.GuardQuit (TestUsernsGuardConstants).
#define STRATA_GUARD_COMMAND "strata-guard"
#define STRATA_GUARD_QUIT 'q'

#define STRATA_MAX_RANGES 64

struct strata_range {
	unsigned long start, count;
};

// strata_read_ranges: see userns.c.
int strata_read_ranges(const char *path, const char *name, const char *uid, struct strata_range *out);
