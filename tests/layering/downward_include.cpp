// Compiled as part of the data layer by tests/layering/check.sh, and must compile: the layers
// below (util) and the layer's own headers are on its include path. The control for
// upward_include.cpp: its failure must come from the layering, not from a broken probe.
#include "data/scan.h"
#include "util/files.h"

int layering_probe_downward() { return histotrain::fs::path("x").empty() ? 1 : 0; }
