#include <sys/prctl.h>
#include "CSystemShim.h"

int mserve_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal); }
