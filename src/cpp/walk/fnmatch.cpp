#include "walk/fnmatch.hpp"

#include <cstddef>

namespace fastcollect {
namespace {

// Matches a set starting at pattern[p] == '['. On success sets `end` to the index after ']' and `hit`
// to whether `c` is in the set. Returns false if the set is not closed (then '[' is a literal).
bool match_set(std::string_view pattern, std::size_t p, unsigned char c, std::size_t& end, bool& hit) {
  std::size_t i = p + 1;
  bool negate = false;
  if (i < pattern.size() && pattern[i] == '!') {
    negate = true;
    ++i;
  }
  // A ']' right after '[' or '[!' is a literal member.
  std::size_t first = i;
  if (i < pattern.size() && pattern[i] == ']') ++i;
  while (i < pattern.size() && pattern[i] != ']') ++i;
  if (i >= pattern.size()) return false;
  end = i + 1;
  bool in = false;
  for (std::size_t k = first; k < i; ++k) {
    auto lo = static_cast<unsigned char>(pattern[k]);
    if (k + 2 < i && pattern[k + 1] == '-') {
      auto hi = static_cast<unsigned char>(pattern[k + 2]);
      if (lo <= c && c <= hi) in = true;
      k += 2;
    } else if (lo == c) {
      in = true;
    }
  }
  hit = negate ? !in : in;
  return true;
}

}  // namespace

bool fnmatch(std::string_view name, std::string_view pattern) {
  // Iterative matcher with single-star backtracking (sufficient: `*` matches any byte run).
  std::size_t n = 0, p = 0;
  std::size_t star_p = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        star_p = ++p;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++n;
        continue;
      }
      if (pc == '[') {
        std::size_t end = 0;
        bool hit = false;
        if (match_set(pattern, p, static_cast<unsigned char>(name[n]), end, hit)) {
          if (hit) {
            p = end;
            ++n;
            continue;
          }
        } else if (name[n] == '[') {
          ++p;
          ++n;
          continue;
        }
      } else if (pc == name[n]) {
        ++p;
        ++n;
        continue;
      }
    }
    if (star_p != std::string_view::npos) {
      p = star_p;
      n = ++star_n;
      continue;
    }
    return false;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool fnmatch_ex(std::string_view pattern, std::string_view path) {
  if (pattern.find('/') == std::string_view::npos) {
    std::size_t slash = path.rfind('/');
    std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
    return fnmatch(base, pattern);
  }
  if (!path.empty() && path[0] == '/' && !pattern.empty() && pattern[0] != '/') {
    std::string full = "*/";
    full.append(pattern);
    return fnmatch(path, full);
  }
  return fnmatch(path, pattern);
}

bool matches_prefix_or_glob(std::string_view name, const std::vector<std::string>& options) {
  for (const auto& opt : options) {
    if (name.substr(0, opt.size()) == opt) return true;
    if (opt.find_first_of("*?[") != std::string::npos && fnmatch(name, opt)) return true;
  }
  return false;
}

}  // namespace fastcollect
