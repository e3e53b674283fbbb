// Compact, versioned binary encoding of ModuleInfo for the discovery cache.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "scan/module_info.hpp"

namespace fastcollect {

/// Raised by decode_module_info for truncated or malformed input (the cache then re-parses the file).
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Encodes every field of `info` except `path` (the cache row's key). Format: one version byte
/// (kModuleInfoFormat), then LEB128 varints for integers and lengths, strings as length + bytes.
std::string encode_module_info(const ModuleInfo& info);

/// Inverse of encode_module_info; sets `path`. Throws DecodeError on any inconsistency (wrong version,
/// truncation, trailing bytes), never reads out of bounds.
ModuleInfo decode_module_info(std::string_view data, const std::string& path);

/// Format version of encode_module_info; part of the cache key together with the scanner version.
constexpr int kModuleInfoFormat = 1;

}  // namespace fastcollect
