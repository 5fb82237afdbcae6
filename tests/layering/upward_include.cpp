// Compiled as part of the data layer by tests/layering/check.sh, and must NOT compile: data sits
// below train, so train's headers are not on its include path (CMakeLists.txt, histotrain_layer).
#include "train/trainer.h"

int layering_probe_upward() { return 0; }
