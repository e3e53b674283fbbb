// tree-sitter-python based scanner: source text -> ModuleInfo.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "scan/module_info.hpp"

namespace fastcollect {

/// Scans one source text. Never throws for bad input: syntax errors set `parse_error`, invalid UTF-8 sets
/// `error`. `path` is copied into the result. Not thread-safe per call site: each thread must use its own
/// Scanner (it owns a tree-sitter parser).
class Scanner {
 public:
  explicit Scanner(NameRules rules);
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  ModuleInfo scan_source(std::string_view source, const std::string& path = "<string>");
  /// Reads `path` (at most 64 MiB) and scans it; read errors go to ModuleInfo::error.
  ModuleInfo scan_file(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // pimpl keeps tree-sitter out of this header
};

/// Scans `paths` on a thread pool (`threads` = 0: hardware concurrency); result i belongs to paths[i].
std::vector<ModuleInfo> scan_files(const std::vector<std::string>& paths, const NameRules& rules, unsigned threads);

/// True if `data` is valid UTF-8 (overlongs and surrogates rejected, as Python's decoder does).
bool is_valid_utf8(std::string_view data);

}  // namespace fastcollect
