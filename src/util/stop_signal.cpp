#include "util/stop_signal.h"

#include <csignal>
#include <cstring>

namespace histotrain {

namespace {

volatile std::sig_atomic_t requested = 0;

extern "C" void on_stop_signal(int signal_number) {
  if (requested != 0) {  // asked twice: the user wants out now
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
    return;
  }
  requested = signal_number;
}

}  // namespace

void catch_stop_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

void release_stop_signals() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

int stop_signal() { return requested; }

void request_stop(int signal_number) {
  if (requested == 0) requested = signal_number;
}

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "a signal";
  }
}

}  // namespace histotrain
