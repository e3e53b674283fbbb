// SQLite discovery cache: (path, stat, xxh3) -> ModuleInfo, so unchanged files are never parsed twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scan/module_info.hpp"

struct sqlite3;

namespace fastcollect {

/// What one cached scan did. Counts are files; `seconds` is wall time of the whole scan() call.
struct CacheStats {
  std::size_t files = 0;     ///< paths asked for
  std::size_t trusted = 0;   ///< stat unchanged (and not racy): row used without reading the file
  std::size_t rehashed = 0;  ///< stat changed but xxh3 of the bytes unchanged: row refreshed, not re-parsed
  std::size_t parsed = 0;    ///< new, changed, or unusable row: parsed with tree-sitter
  std::size_t pruned = 0;    ///< rows of files that no longer exist, deleted
  bool read_only = false;    ///< opened with mode=ro: nothing written
  bool wrote = false;        ///< a write transaction committed
  double seconds = 0;
  std::string warning;  ///< one line when the cache was set aside, busy, or unusable; empty otherwise
};

/// The discovery cache of one rootdir: a SQLite file in WAL mode with a busy timeout.
///
/// Lookup ladder per file (DESIGN.md, store/): stat -> if (mtime_ns, ctime_ns, size, inode) equal the row's
/// and the row is not "racy" (its file changed less than 1 s before the row was recorded, the racy-git
/// rule: a same-tick edit could keep the timestamps) the row is trusted; else the bytes are hashed with
/// XXH3-64 -> if equal the row is refreshed; else the file is parsed and the row replaced. Rows carry a
/// key of scanner version, encoding version and name rules; rows with another key are ignored.
///
/// Never throws. A file that is not a database, corrupt, or of another schema version is renamed to
/// `<path>.corrupt` (with its -wal/-shm) and rebuilt, with one warning line; a lock held longer than the
/// busy timeout skips writing for this run, with one warning line. Read-only mode (`mode=ro`, for xdist
/// workers and read-only checkouts) never writes, never rebuilds: an unusable file just means no cache.
class DiscoveryCache {
 public:
  DiscoveryCache(std::string path, bool read_only, int busy_timeout_ms = 10000);
  ~DiscoveryCache();
  DiscoveryCache(const DiscoveryCache&) = delete;
  DiscoveryCache& operator=(const DiscoveryCache&) = delete;

  /// False when the database could not be opened (then scan() parses everything and writes nothing).
  bool usable() const { return db_ != nullptr; }
  /// Warning from opening (set aside, unusable), empty when none.
  const std::string& open_warning() const { return open_warning_; }

  /// The cached scan of `paths` (results in the same order), on `threads` threads (0 = all cores).
  /// All writes of the call happen in one transaction at the end.
  std::vector<ModuleInfo> scan(const std::vector<std::string>& paths, const NameRules& rules, unsigned threads,
                               CacheStats& stats);

  /// Number of rows (for tests and status).
  std::size_t row_count();

  /// Removes the database file and its -wal/-shm companions. Returns false (with `error`) on failure;
  /// a missing file is not a failure.
  static bool remove_files(const std::string& path, std::string& error);

  /// The schema version stored in PRAGMA user_version.
  static constexpr int kSchemaVersion = 1;
  /// Version of the scanner's output semantics; bump when ModuleInfo content changes for the same input.
  static constexpr int kScannerVersion = 1;

 private:
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  bool open_db(std::string& error, bool& not_a_db);
  bool set_aside_and_rebuild(const std::string& why);

  std::string path_;
  bool read_only_;
  bool immutable_ = false;  // read-only fallback for folders where SQLite cannot create the -shm file
  int busy_timeout_ms_;
  std::unique_ptr<sqlite3, Closer> db_;
  std::string open_warning_;
};

/// Fingerprint of (scanner version, encoding version, name rules): the `key` column of cache rows.
std::int64_t cache_key(const NameRules& rules);

}  // namespace fastcollect
