#include "walk/walk.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "common/parallel.hpp"
#include "walk/fnmatch.hpp"

namespace fastcollect {
namespace {

struct Entry {
  std::string name;
  bool is_dir = false;
  bool is_file = false;
};

struct DirListing {
  std::vector<Entry> entries;  // sorted as pytest sorts them
  std::string error;
  bool listed = false;
};

bool ends_with(const std::string& s, const char* suffix) {
  std::size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

std::string join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// pytest's _in_venv: pyvenv.cfg, or conda-meta/history.
bool in_venv(const std::string& dir) {
  return is_regular_file(join(dir, "pyvenv.cfg")) || is_regular_file(join(dir, "conda-meta/history"));
}

DirListing list_dir(const std::string& dir) {
  DirListing out;
  std::unique_ptr<DIR, int (*)(DIR*)> handle(::opendir(dir.c_str()), &::closedir);
  if (!handle) {
    out.error = dir + ": " + std::strerror(errno);
    return out;
  }
  out.listed = true;
  bool has_init = false;
  while (dirent* d = ::readdir(handle.get())) {
    std::string name = d->d_name;
    if (name == "." || name == "..") continue;
    Entry e;
    e.name = std::move(name);
    unsigned char type = d->d_type;
    if (type == DT_DIR) {
      e.is_dir = true;
    } else if (type == DT_REG) {
      e.is_file = true;
    } else {  // DT_LNK / DT_UNKNOWN: follow, as os.DirEntry.is_dir()/is_file() do
      struct stat st {};
      if (::stat(join(dir, e.name).c_str(), &st) == 0) {
        e.is_dir = S_ISDIR(st.st_mode);
        e.is_file = S_ISREG(st.st_mode);
      }
    }
    if (e.is_file && e.name == "__init__.py") has_init = true;
    out.entries.push_back(std::move(e));
  }
  // Dir.collect sorts by name; Package.collect (a folder with __init__.py) puts __init__.py first.
  std::sort(out.entries.begin(), out.entries.end(), [has_init](const Entry& a, const Entry& b) {
    if (has_init) {
      bool ai = a.name == "__init__.py", bi = b.name == "__init__.py";
      if (ai != bi) return ai;
    }
    return a.name < b.name;
  });
  return out;
}

class Walker {
 public:
  explicit Walker(const WalkConfig& config) : config_(config) {
    for (const auto& r : config_.roots) root_set_.insert(strip_slash(r));
  }

  WalkResult run() {
    WalkResult result;
    std::vector<std::string> level;
    std::vector<std::pair<std::string, bool>> root_kinds;  // (path, is_dir)
    for (const auto& raw : config_.roots) {
      std::string r = strip_slash(raw);
      struct stat st {};
      if (::stat(r.c_str(), &st) != 0) {
        result.errors.push_back(r + ": " + std::strerror(errno));
        continue;
      }
      bool is_dir = S_ISDIR(st.st_mode);
      root_kinds.emplace_back(r, is_dir);
      if (is_dir) {
        seen_real_dir(r);  // a symlink back to a root must not visit it again
        level.push_back(r);
      }
    }
    // Breadth-first, one level at a time in parallel; each listing is filtered, its kept sub-folders
    // form the next level.
    while (!level.empty()) {
      std::vector<DirListing> listings(level.size());
      run_workers(level.size(), config_.threads, [&](unsigned, auto& next) {
        std::size_t i = 0;
        while (next(i)) listings[i] = list_dir(level[i]);
      });
      std::vector<std::string> next_level;
      for (std::size_t i = 0; i < level.size(); ++i) {
        ++result.dirs_visited;
        if (!listings[i].error.empty()) result.errors.push_back(listings[i].error);
        std::vector<Entry> kept;
        for (auto& e : listings[i].entries) {
          std::string full = join(level[i], e.name);
          if (e.is_dir) {
            if (!keep_dir(full, e.name)) continue;
            if (!seen_real_dir(full) && !root_set_.count(full)) continue;
            next_level.push_back(full);
          } else if (e.is_file) {
            if (!keep_file(full, e.name)) continue;
          } else {
            continue;
          }
          kept.push_back(std::move(e));
        }
        listings_.emplace(level[i], std::move(kept));
      }
      level = std::move(next_level);
    }
    // Sequential depth-first assembly in pytest's order.
    std::set<std::string> emitted;
    for (const auto& [path, is_dir] : root_kinds) {
      if (is_dir) {
        emit_dir(path, result, emitted);
      } else if (emitted.insert(path).second) {
        if (ends_with(path, "/conftest.py")) result.conftests.push_back(path);
        result.files.push_back(path);  // a file named on the command line is collected whatever its name
      }
    }
    return result;
  }

 private:
  static std::string strip_slash(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  }

  // Session.isinitpath(path, with_parents=True): the path is a root or a parent of one.
  bool is_init_path_or_parent(const std::string& path) const {
    for (const auto& r : root_set_) {
      if (r == path) return true;
      if (r.size() > path.size() && r.compare(0, path.size(), path) == 0 && r[path.size()] == '/') return true;
    }
    return false;
  }

  bool ignored_common(const std::string& full, const std::string& name) const {
    if (name == "__pycache__") return true;
    for (const auto& p : config_.ignore_paths)
      if (strip_slash(p) == full) return true;
    for (const auto& g : config_.ignore_globs)
      if (fnmatch(full, g)) return true;
    return false;
  }

  bool keep_dir(const std::string& full, const std::string& name) const {
    if (is_init_path_or_parent(full)) return true;
    if (ignored_common(full, name)) return false;
    if (!config_.collect_in_virtualenv && in_venv(full)) return false;
    for (const auto& pat : config_.norecursedirs)
      if (fnmatch_ex(pat, full)) return false;
    return true;
  }

  bool keep_file(const std::string& full, const std::string& name) const {
    if (root_set_.count(full)) return true;
    if (name == "conftest.py") return true;  // recorded as a conftest, not a test module (filtered below)
    if (ignored_common(full, name)) return false;
    return is_python_test_file(full, config_.python_files);
  }

  bool seen_real_dir(const std::string& full) {
    struct stat st {};
    if (::stat(full.c_str(), &st) != 0) return true;
    return real_dirs_.insert({st.st_dev, st.st_ino}).second;
  }

  void emit_dir(const std::string& dir, WalkResult& result, std::set<std::string>& emitted) {
    auto it = listings_.find(dir);
    if (it == listings_.end()) return;
    for (const auto& e : it->second) {
      std::string full = join(dir, e.name);
      if (e.is_dir) {
        emit_dir(full, result, emitted);
        continue;
      }
      if (e.name == "conftest.py") {
        result.conftests.push_back(full);
        if (!root_set_.count(full) && !is_python_test_file(full, config_.python_files)) continue;
      }
      if (emitted.insert(full).second) result.files.push_back(full);
    }
  }

  const WalkConfig& config_;
  std::set<std::string> root_set_;
  std::set<std::pair<dev_t, ino_t>> real_dirs_;
  std::unordered_map<std::string, std::vector<Entry>> listings_;
};

}  // namespace

bool is_python_test_file(const std::string& path, const std::vector<std::string>& python_files) {
  if (!ends_with(path, ".py")) return false;
  for (const auto& pat : python_files)
    if (fnmatch_ex(pat, path)) return true;
  return false;
}

WalkResult walk(const WalkConfig& config) { return Walker(config).run(); }

}  // namespace fastcollect
