// Instruction-set selection for the CPU kernels: chosen once from CPUID (and
// the OS's support for the wider register state), or forced with
// TANDEM_FORCE_ISA=scalar|avx2|avx512 so CI can exercise every path on one machine.
//
// kAvx512 means AVX-512 F/BW/VL/DQ plus VNNI (Ice Lake, Sapphire Rapids, Zen 4
// and later). It adds vpdpbusd to the quantized kernels. A CPU with AVX-512 but
// no VNNI (Skylake-X) runs the AVX2 paths.
//
// AVX512_BF16 (vdpbf16ps: Cooper Lake, Sapphire Rapids, Zen 4 and later) is an
// optional capability of the avx512 level, not a level of its own: where it is
// present, bf16 weights use the bf16 dot-product kernel (matmul_avx512.cpp);
// everything else at that level, f32/f16 weights included, uses the AVX2 float
// code.
#pragma once

#include <string_view>

namespace tandem::kernels {

enum class Isa { kScalar, kAvx2, kAvx512 };

Isa detected_isa();  // the best this CPU supports
Isa active_isa();    // detected, or forced by TANDEM_FORCE_ISA (never above detected)
std::string_view isa_name(Isa isa);

// The CPU has AVX512_BF16 on top of the avx512 level (whatever is forced).
bool cpu_has_avx512_bf16();
// The active ISA is avx512 and the CPU has AVX512_BF16: false under
// TANDEM_FORCE_ISA=avx2 or scalar.
bool has_avx512_bf16();

}  // namespace tandem::kernels
