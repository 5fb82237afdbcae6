// The two kinds of failure a user sees: a wrong command line (exit code 2) and anything else that
// stops a command (exit code 1). Both carry a message meant for a person, not a stack trace.
#pragma once
#include <stdexcept>
#include <string>

namespace histotrain {

// A bad flag value or a combination of flags that cannot work: exit code 2, like a parse error.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Missing or unusable data, an unwritable output folder, a checkpoint that does not fit.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace histotrain
