// Shared by userns.c and userns.go's preamble.

// runners.GuardCommand and runners.GuardQuit (TestUsernsGuardConstants).
#define STRATA_GUARD_COMMAND "strata-guard"
#define STRATA_GUARD_QUIT 'q'
