// How much memory this process has used at its peak.
#pragma once

namespace histotrain {

// VmHWM of this process in MiB (Linux's peak resident set size), or -1 where unknown.
double peak_rss_mib();

}  // namespace histotrain
