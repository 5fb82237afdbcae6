// Compiled as part of the data layer by tests/layering/check.sh, and must NOT compile: leakage
// detection uses data (loading), and data reaches it only through a callback
// (DataOptions::find_groups), so leakage's headers are not on data's include path.
#include "leakage/group_finder.h"

int layering_probe_next_layer() { return 0; }
