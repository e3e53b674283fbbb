#include "store/discovery_cache.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/parallel.hpp"
#include "scan/scanner.hpp"
#include "scan/serialize.hpp"
#include "store/fingerprint.hpp"

namespace fastcollect {
namespace {

constexpr std::int64_t kRacyWindowNs = 1'000'000'000;  // 1 s: see the class comment
constexpr std::int64_t kMaxScanBytes = 64LL << 20;     // Scanner::scan_file's limit

struct StmtCloser {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtCloser>;

struct Row {
  std::int64_t mtime_ns = 0, ctime_ns = 0, size = 0, inode = 0, hash = 0, key = 0, recorded_ns = 0;
  std::string info;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_corruption(int rc) {
  int primary = rc & 0xFF;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB || primary == SQLITE_FORMAT;
}

bool is_busy(int rc) {
  int primary = rc & 0xFF;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// Percent-encodes everything but unreserved characters and '/', for a SQLite "file:" URI.
std::string uri_escape(const std::string& path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// What each file needs after the parallel pass.
enum class Action { None, Refresh, Write };

}  // namespace

void DiscoveryCache::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

std::int64_t cache_key(const NameRules& rules) {
  std::string s = "scanner=" + std::to_string(DiscoveryCache::kScannerVersion) +
                  ";format=" + std::to_string(kModuleInfoFormat) + ";functions=";
  for (const auto& f : rules.python_functions) s += f + "\x1f";
  s += ";classes=";
  for (const auto& c : rules.python_classes) s += c + "\x1f";
  return xxh3_of(s);
}

DiscoveryCache::DiscoveryCache(std::string path, bool read_only, int busy_timeout_ms)
    : path_(std::move(path)), read_only_(read_only), busy_timeout_ms_(busy_timeout_ms) {
  std::string error;
  bool not_a_db = false;
  if (open_db(error, not_a_db)) return;
  if (read_only_) {
    // In a folder we may not write, SQLite cannot create the -shm file a WAL reader needs: read the file as
    // immutable instead (safe: in read-only mode nobody is expected to write it during the run).
    if (!error.empty() && !not_a_db) {
      immutable_ = true;
      std::string error2;
      if (open_db(error2, not_a_db)) return;
    }
    if (!error.empty()) open_warning_ = "fastcollect cache unusable (read-only, not rebuilt): " + error;
    return;
  }
  if (not_a_db) {
    set_aside_and_rebuild(error);
  } else {
    open_warning_ = "fastcollect cache disabled for this run: " + error;
  }
}

DiscoveryCache::~DiscoveryCache() = default;

bool DiscoveryCache::open_db(std::string& error, bool& not_a_db) {
  db_.reset();
  not_a_db = false;
  sqlite3* raw = nullptr;
  int rc;
  if (read_only_) {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return false;  // no cache yet: not an error, nothing to read
    if (immutable_) {
      std::string uri = "file:" + uri_escape(path_) + "?immutable=1";
      rc = sqlite3_open_v2(uri.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);
    } else {
      // A plain name, not a "file:...?mode=ro" URI: '#', '?' and '%' in the path would be URI syntax.
      rc = sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    }
  } else {
    rc =
        sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  }
  std::unique_ptr<sqlite3, Closer> db(raw);
  if (rc != SQLITE_OK) {
    error = std::string("cannot open ") + path_ + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    not_a_db = is_corruption(rc);
    return false;
  }
  sqlite3_busy_timeout(db.get(), busy_timeout_ms_);
  auto fail = [&](int code) {
    error = std::string(sqlite3_errmsg(db.get())) + " (" + path_ + ")";
    not_a_db = is_corruption(code);
    return false;
  };
  // user_version first: it also makes SQLite read the header, so a non-database fails here.
  int version = -1;
  {
    sqlite3_stmt* raw_stmt = nullptr;
    rc = sqlite3_prepare_v2(db.get(), "PRAGMA user_version", -1, &raw_stmt, nullptr);
    Stmt st(raw_stmt);
    if (rc != SQLITE_OK) return fail(rc);
    rc = sqlite3_step(st.get());
    if (rc != SQLITE_ROW) return fail(rc);
    version = sqlite3_column_int(st.get(), 0);
  }
  if (!read_only_) {
    rc = sqlite3_exec(db.get(), "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK && !is_busy(rc)) return fail(rc);
  }
  if (version == kSchemaVersion) {
    db_ = std::move(db);
    return true;
  }
  if (read_only_) {
    error = "schema version " + std::to_string(version) + ", expected " + std::to_string(kSchemaVersion);
    return false;
  }
  if (version != 0) {
    error = "schema version " + std::to_string(version) + ", expected " + std::to_string(kSchemaVersion);
    not_a_db = true;  // another version's file: set aside and rebuild
    return false;
  }
  // A new file: create the schema (concurrent creators are serialised by the immediate transaction).
  const char* ddl =
      "BEGIN IMMEDIATE;"
      "CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,"
      " size INTEGER NOT NULL, inode INTEGER NOT NULL, hash INTEGER NOT NULL, key INTEGER NOT NULL,"
      " recorded_ns INTEGER NOT NULL, info BLOB NOT NULL) WITHOUT ROWID;"
      "PRAGMA user_version = 1;"
      "COMMIT;";
  static_assert(kSchemaVersion == 1, "update the DDL's user_version");
  rc = sqlite3_exec(db.get(), ddl, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    bool failed = fail(rc);  // before ROLLBACK replaces the error message
    sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    return failed;
  }
  db_ = std::move(db);
  return true;
}

bool DiscoveryCache::remove_files(const std::string& path, std::string& error) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string p = path + suffix;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
      error = "cannot remove " + p + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

bool DiscoveryCache::set_aside_and_rebuild(const std::string& why) {
  db_.reset();
  std::string aside = path_ + ".corrupt";
  std::string ignored;
  remove_files(aside, ignored);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::string from = path_ + suffix, to = aside + suffix;
    if (std::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) ::unlink(from.c_str());
  }
  std::string error;
  bool not_a_db = false;
  if (open_db(error, not_a_db)) {
    open_warning_ = "fastcollect cache was unusable (" + why + "); set aside as " + aside + " and rebuilt";
    return true;
  }
  open_warning_ = "fastcollect cache unusable (" + why + "), rebuild failed: " + error;
  return false;
}

std::size_t DiscoveryCache::row_count() {
  if (!db_) return 0;
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_.get(), "SELECT count(*) FROM files", -1, &raw, nullptr) != SQLITE_OK) return 0;
  Stmt st(raw);
  if (sqlite3_step(st.get()) != SQLITE_ROW) return 0;
  return static_cast<std::size_t>(sqlite3_column_int64(st.get(), 0));
}

std::vector<ModuleInfo> DiscoveryCache::scan(const std::vector<std::string>& paths, const NameRules& rules,
                                             unsigned threads, CacheStats& stats) {
  auto t0 = std::chrono::steady_clock::now();
  stats = CacheStats{};
  stats.files = paths.size();
  stats.read_only = read_only_;
  stats.warning = open_warning_;
  const std::int64_t key = cache_key(rules);
  const std::int64_t recorded = now_ns();

  // 1. Load the rows (one query; the table holds one row per test file of the rootdir).
  std::unordered_map<std::string, Row> rows;
  auto load = [&]() -> int {
    rows.clear();
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(),
                                "SELECT path, mtime_ns, ctime_ns, size, inode, hash, key, recorded_ns, info FROM files",
                                -1, &raw, nullptr);
    Stmt st(raw);
    if (rc != SQLITE_OK) return rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      Row r;
      r.mtime_ns = sqlite3_column_int64(st.get(), 1);
      r.ctime_ns = sqlite3_column_int64(st.get(), 2);
      r.size = sqlite3_column_int64(st.get(), 3);
      r.inode = sqlite3_column_int64(st.get(), 4);
      r.hash = sqlite3_column_int64(st.get(), 5);
      r.key = sqlite3_column_int64(st.get(), 6);
      r.recorded_ns = sqlite3_column_int64(st.get(), 7);
      const void* blob = sqlite3_column_blob(st.get(), 8);
      int n = sqlite3_column_bytes(st.get(), 8);
      if (blob && n > 0) r.info.assign(static_cast<const char*>(blob), static_cast<std::size_t>(n));
      const unsigned char* p = sqlite3_column_text(st.get(), 0);
      if (p) rows.emplace(reinterpret_cast<const char*>(p), std::move(r));
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  };
  if (db_) {
    int rc = load();
    if (rc != SQLITE_OK) {
      std::string why = sqlite3_errmsg(db_.get());
      rows.clear();
      if (is_corruption(rc) && !read_only_) {
        set_aside_and_rebuild(why);
      } else {
        stats.warning = "fastcollect cache not read (" + why + ")";
        if (!read_only_ && !is_busy(rc)) db_.reset();
      }
      if (!open_warning_.empty()) stats.warning = open_warning_;
    }
  }

  // 2. The lookup ladder, in parallel.
  std::vector<ModuleInfo> out(paths.size());
  std::vector<Action> action(paths.size(), Action::None);
  std::vector<FileStat> fstat(paths.size());
  std::vector<std::int64_t> hashes(paths.size(), 0);
  std::vector<std::string> encoded(paths.size());
  std::vector<unsigned char> how(paths.size(), 0);  // 1 trusted, 2 rehashed, 3 parsed
  run_workers(paths.size(), threads, [&](unsigned, auto& next) {
    Scanner scanner(rules);
    std::size_t i = 0;
    while (next(i)) {
      const std::string& path = paths[i];
      try {
        FileStat fs = stat_file(path);
        fstat[i] = fs;
        auto it = rows.find(path);
        const Row* row = (it != rows.end() && it->second.key == key) ? &it->second : nullptr;
        if (!fs.ok || fs.size > kMaxScanBytes) {  // unreadable or too large: recorded per file, never cached
          out[i] = scanner.scan_file(path);
          how[i] = 3;
          continue;
        }
        if (row && row->mtime_ns == fs.mtime_ns && row->ctime_ns == fs.ctime_ns && row->size == fs.size &&
            row->inode == fs.inode && row->recorded_ns - std::max(fs.mtime_ns, fs.ctime_ns) >= kRacyWindowNs) {
          try {
            out[i] = decode_module_info(row->info, path);
            how[i] = 1;
            continue;
          } catch (const DecodeError&) {
            // fall through: re-read and re-parse
          }
        }
        std::string bytes;
        if (!read_bytes(path, bytes)) {
          out[i] = scanner.scan_file(path);
          how[i] = 3;
          continue;
        }
        auto h = xxh3_of(bytes);
        hashes[i] = h;
        if (row && row->hash == h) {
          try {
            out[i] = decode_module_info(row->info, path);
            encoded[i] = row->info;
            action[i] = Action::Refresh;
            how[i] = 2;
            continue;
          } catch (const DecodeError&) {
          }
        }
        out[i] = scanner.scan_source(bytes, path);
        how[i] = 3;
        if (out[i].error.empty()) {
          encoded[i] = encode_module_info(out[i]);
          action[i] = Action::Write;
        }
      } catch (const std::exception& e) {
        out[i] = ModuleInfo::failed(path, std::string("scanner failure: ") + e.what());
        how[i] = 3;
      }
    }
  });
  for (unsigned char h : how) {
    if (h == 1) ++stats.trusted;
    if (h == 2) ++stats.rehashed;
    if (h == 3) ++stats.parsed;
  }

  // 3. Rows of vanished files: asked-for paths whose stat said ENOENT, and rows of paths this scan did not
  // ask for (stat'ed only then).
  std::vector<std::string> vanished;
  if (db_ && !rows.empty()) {
    std::unordered_set<std::string> asked(paths.begin(), paths.end());
    for (std::size_t i = 0; i < paths.size(); ++i)
      if (!fstat[i].ok && fstat[i].err == ENOENT && rows.count(paths[i])) vanished.push_back(paths[i]);
    if (rows.size() > asked.size() - vanished.size()) {
      for (const auto& [p, r] : rows) {
        if (asked.count(p)) continue;
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0 && errno == ENOENT) vanished.push_back(p);
      }
    }
  }

  // 4. One write transaction (never in read-only mode).
  bool need_write = !vanished.empty();
  for (Action a : action) need_write = need_write || a != Action::None;
  if (db_ && !read_only_ && need_write) {
    auto rollback = [&](int rc) {
      std::string why = sqlite3_errmsg(db_.get());
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      if (is_busy(rc)) {
        stats.warning = "fastcollect cache busy (" + why + "): not updated this run";
      } else if (is_corruption(rc)) {
        set_aside_and_rebuild(why);
        stats.warning = open_warning_;
      } else {
        stats.warning = "fastcollect cache not updated (" + why + ")";
      }
    };
    int rc = sqlite3_exec(db_.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      rollback(rc);
    } else {
      sqlite3_stmt* raw = nullptr;
      rc = sqlite3_prepare_v2(db_.get(),
                              "INSERT OR REPLACE INTO files(path, mtime_ns, ctime_ns, size, inode, hash, key, "
                              "recorded_ns, info) VALUES(?,?,?,?,?,?,?,?,?)",
                              -1, &raw, nullptr);
      Stmt ins(raw);
      for (std::size_t i = 0; rc == SQLITE_OK && i < paths.size(); ++i) {
        if (action[i] == Action::None) continue;
        const FileStat& fs = fstat[i];
        sqlite3_bind_text(ins.get(), 1, paths[i].data(), static_cast<int>(paths[i].size()), SQLITE_STATIC);
        sqlite3_bind_int64(ins.get(), 2, fs.mtime_ns);
        sqlite3_bind_int64(ins.get(), 3, fs.ctime_ns);
        sqlite3_bind_int64(ins.get(), 4, fs.size);
        sqlite3_bind_int64(ins.get(), 5, fs.inode);
        sqlite3_bind_int64(ins.get(), 6, hashes[i]);
        sqlite3_bind_int64(ins.get(), 7, key);
        sqlite3_bind_int64(ins.get(), 8, recorded);
        sqlite3_bind_blob(ins.get(), 9, encoded[i].data(), static_cast<int>(encoded[i].size()), SQLITE_STATIC);
        int step = sqlite3_step(ins.get());
        rc = step == SQLITE_DONE ? SQLITE_OK : step;
        sqlite3_reset(ins.get());
      }
      if (rc == SQLITE_OK && !vanished.empty()) {
        sqlite3_stmt* rawd = nullptr;
        rc = sqlite3_prepare_v2(db_.get(), "DELETE FROM files WHERE path = ?", -1, &rawd, nullptr);
        Stmt del(rawd);
        for (std::size_t k = 0; rc == SQLITE_OK && k < vanished.size(); ++k) {
          sqlite3_bind_text(del.get(), 1, vanished[k].data(), static_cast<int>(vanished[k].size()), SQLITE_STATIC);
          int step = sqlite3_step(del.get());
          rc = step == SQLITE_DONE ? SQLITE_OK : step;
          sqlite3_reset(del.get());
        }
        if (rc == SQLITE_OK) stats.pruned = vanished.size();
      }
      ins.reset();
      if (rc == SQLITE_OK) rc = sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) {
        stats.wrote = true;
      } else {
        stats.pruned = 0;
        rollback(rc);
      }
    }
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace fastcollect
