// Errors: library code never aborts. A bad file, tensor or field becomes a
// tandem::Error whose message names it; the caller decides what to do.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace tandem {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
};

// Programmer-error check that stays on in release builds; throws instead of aborting
// so a server can report the failing request and keep serving.
#define TANDEM_CHECK(cond, msg)                                                          \
  do {                                                                                   \
    if (!(cond)) throw ::tandem::Error(std::string("internal check failed: ") + (msg) + \
                                       " (" #cond ")");                                  \
  } while (0)

}  // namespace tandem
