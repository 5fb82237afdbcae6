// Compiled as part of the data layer by tests/layering/check.sh, and must NOT compile: leakage
// detection is the layer right above data (loading), which reaches it only through a callback
// (DataOptions::find_groups), so its headers are not on data's include path.
#include "leakage/group_finder.h"

int layering_probe_next_layer() { return 0; }
