#include "kernels/cpu/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/log.h"

namespace tandem::kernels {
namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::kScalar;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!(fma && osxsave && avx && f16c)) return Isa::kScalar;
  // The OS must save the YMM state (XCR0 bits 1 and 2), or AVX code faults.
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return Isa::kScalar;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::kScalar;
  if (!(b & (1u << 5))) return Isa::kScalar;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  // The OS must also save the opmask and ZMM state (XCR0 bits 5-7).
  if (f && dq && bw && vl && vnni && (xcr0_lo & 0xE0u) == 0xE0u) return Isa::kAvx512;
  return Isa::kAvx2;
#endif
  return Isa::kScalar;
}

bool detect_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  if (detect() != Isa::kAvx512) return false;
  // CPUID leaf 7, subleaf 1, EAX bit 5. Leaf 7's subleaf count is EAX of subleaf 0.
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1) return false;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 5)) != 0;
#endif
  return false;
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
  } else if (f == "avx512") {
    want = Isa::kAvx512;
  } else {
    log::warn("TANDEM_FORCE_ISA='" + f + "' is not one of scalar, avx2, avx512; using " +
              std::string(isa_name(best)));
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

bool cpu_has_avx512_bf16() {
  static const bool has = detect_avx512_bf16();
  return has;
}

bool has_avx512_bf16() { return active_isa() == Isa::kAvx512 && cpu_has_avx512_bf16(); }

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

}  // namespace tandem::kernels
