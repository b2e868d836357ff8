// Instruction-set selection for the CPU kernels: chosen once from CPUID (and
// the OS's support for the wider register state), or forced with
// TANDEM_FORCE_ISA=scalar|avx2 so CI can exercise every path on one machine.
#pragma once

#include <string_view>

namespace tandem::kernels {

enum class Isa { kScalar, kAvx2 };

Isa detected_isa();  // the best this CPU supports
Isa active_isa();    // detected, or forced by TANDEM_FORCE_ISA (never above detected)
std::string_view isa_name(Isa isa);

}  // namespace tandem::kernels
