// Ctrl-C and SIGTERM (what Slurm, torchrun and `histotrain launch` send before they kill) ask a
// training run to stop at the next step boundary, write a checkpoint and exit; a second signal
// stops it at once. Outside the window in which the handlers are installed the signals keep
// their default effect: a run still decoding its data simply ends.
#pragma once

namespace histotrain {

// Installs the handlers for SIGINT and SIGTERM; release_stop_signals() restores the defaults.
void catch_stop_signals();
void release_stop_signals();

// The signal that asked for a stop (SIGINT or SIGTERM), or 0.
int stop_signal();

// Records a stop that another rank received, so that every rank of a job exits the same way.
void request_stop(int signal_number);

// "SIGINT", "SIGTERM", ...
const char* signal_name(int signal_number);

}  // namespace histotrain
