// Instruction-set selection for the CPU kernels: chosen once from CPUID (and
// the OS's support for the wider register state), or forced with
// TANDEM_FORCE_ISA=scalar|avx2|avx512 so CI can exercise every path on one machine.
//
// kAvx512 means AVX-512 F/BW/VL/DQ plus VNNI (Ice Lake, Sapphire Rapids, Zen 4
// and later). It adds vpdpbusd to the quantized kernels; the float kernels use
// the AVX2 code there. A CPU with AVX-512 but no VNNI (Skylake-X) runs the AVX2
// paths.
#pragma once

#include <string_view>

namespace tandem::kernels {

enum class Isa { kScalar, kAvx2, kAvx512 };

Isa detected_isa();  // the best this CPU supports
Isa active_isa();    // detected, or forced by TANDEM_FORCE_ISA (never above detected)
std::string_view isa_name(Isa isa);

}  // namespace tandem::kernels
