// The inner loop of attention (kernels/cpu/ops.h): one query against the keys
// and values of one key/value head, for every query head that shares it
// (grouped-query attention). Each key and value row is read once for the whole
// group instead of once per query head, which is what decode at a long context
// is bound by. One translation unit per ISA with a scalar reference beside it,
// chosen from the active ISA (kernels/cpu/isa.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/isa.h"

namespace tandem::kernels {

// Rows of a (possibly paged) key or value cache: position j's row is
// blocks[j / block_size] + (j % block_size) * stride.
struct KvRows {
  const float* const* blocks = nullptr;
  int64_t block_size = 1;
  int64_t stride = 0;
  const float* row(int64_t j) const { return blocks[j / block_size] + (j % block_size) * stride; }
};

// The `group` query heads in q (group * head_dim floats, head after head)
// attend to positions [first, last] of k and v, whose head starts kv_offset
// floats into each row: softmax(scale * q·k, softcapped when softcap > 0)
// weighs the value rows into out (group * head_dim floats, same layout).
// Scratch: scores of attend_scores_size(group, n) floats and rows of 2 n
// pointers (n = last - first + 1).
struct AttendGroupArgs {
  const float* q = nullptr;
  int64_t group = 1;
  int64_t head_dim = 0;
  KvRows k, v;
  int64_t kv_offset = 0;
  int64_t first = 0, last = 0;
  float scale = 1.0f;
  float softcap = 0.0f;
  float* scores = nullptr;
  const float** rows = nullptr;
  float* out = nullptr;
};

// The scores scratch one call needs: the scalar kernel keeps group * n, the
// AVX2 one 8 heads' at a time (8 n).
inline int64_t attend_scores_size(int64_t group, int64_t n) { return std::max<int64_t>(group, 8) * n; }

void attend_group_scalar(const AttendGroupArgs& a);
void attend_group_avx2(const AttendGroupArgs& a);  // head_dim % 8 != 0 goes to the scalar one
// The active ISA's (AVX2 for avx512 too: these loops are bound by the rows read).
void attend_group(const AttendGroupArgs& a);
void attend_group_with(Isa isa, const AttendGroupArgs& a);

}  // namespace tandem::kernels
