#include "kernels/cpu/isa.h"

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/log.h"

namespace tandem::kernels {
namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports checks the OS's XSAVE support for AVX state too.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return Isa::kAvx2;
  }
#endif
  return Isa::kScalar;
}

Isa choose() {
  Isa best = detect();
  const char* forced = std::getenv("TANDEM_FORCE_ISA");
  if (forced == nullptr || *forced == '\0') return best;
  std::string f(forced);
  Isa want;
  if (f == "scalar") {
    want = Isa::kScalar;
  } else if (f == "avx2") {
    want = Isa::kAvx2;
  } else {
    log::warn("TANDEM_FORCE_ISA='" + f + "' is not one of scalar, avx2; using " + std::string(isa_name(best)));
    return best;
  }
  if (static_cast<int>(want) > static_cast<int>(best)) {
    log::warn("TANDEM_FORCE_ISA=" + f + " is not supported by this CPU; using " + std::string(isa_name(best)));
    return best;
  }
  return want;
}

}  // namespace

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() {
  static const Isa isa = choose();
  return isa;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
  }
  return "?";
}

}  // namespace tandem::kernels
