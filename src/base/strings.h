// Small string helpers shared by the CLI and the formats.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// "1,2, 3" -> {1,2,3}. Throws tandem::Error naming `what` on a malformed list.
std::vector<int32_t> parse_id_list(std::string_view text, std::string_view what);

// Expands the C escapes \n \t \\ \" \r in a command-line prompt.
std::string unescape(std::string_view text);

std::string join_ints(const std::vector<int32_t>& v, std::string_view sep);

// Human-readable byte count: "18.0 MiB".
std::string format_bytes(uint64_t bytes);

}  // namespace tandem
