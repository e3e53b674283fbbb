// Glob matching with the exact semantics pytest uses for its path and name rules.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fastcollect {

/// Python's `fnmatch.fnmatchcase(name, pattern)` (POSIX: case-sensitive, `*` also matches `/`):
/// `*` any run, `?` one character, `[seq]` / `[!seq]` sets with ranges; an unclosed `[` is literal.
/// Operates on UTF-8 bytes; a multi-byte character counts as several for `?` (never an issue for the
/// ASCII patterns pytest users write). Source of the rule: CPython Lib/fnmatch.py (translate()).
bool fnmatch(std::string_view name, std::string_view pattern);

/// pytest's `fnmatch_ex(pattern, path)` (_pytest/pathlib.py): a pattern without `/` is matched against
/// the basename; otherwise against the whole path, with `*/` prefixed to a relative pattern when the
/// path is absolute. `path` must be absolute or relative as pytest would see it.
bool fnmatch_ex(std::string_view pattern, std::string_view path);

/// pytest's `_matches_prefix_or_glob_option` (_pytest/python.py): true if `name` starts with one of the
/// options, or an option containing `*`, `?` or `[` glob-matches it. Used for python_functions and
/// python_classes.
bool matches_prefix_or_glob(std::string_view name, const std::vector<std::string>& options);

}  // namespace fastcollect
