// File fingerprints: what "this file is unchanged" means for the discovery cache and the warm daemon.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastcollect {

/// stat(2) of one path. `ok` is true only for a regular file; otherwise `err` holds errno (EISDIR for a folder
/// or other non-regular file). Times in nanoseconds since the epoch, size in bytes.
struct FileStat {
  bool ok = false;
  int err = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0, size = 0, inode = 0;
};

/// stat(2) follows symlinks, as Python's import system does when it reads a module.
FileStat stat_file(const std::string& path);

/// Reads the whole file into `out`; false if it cannot be opened or read.
bool read_bytes(const std::string& path, std::string& out);

/// XXH3-64 of a byte string, as a signed 64-bit value (SQLite's integer type).
std::int64_t xxh3_of(const std::string& bytes);

/// A file's identity for freshness checks: its stat plus, when requested and the file is readable, the XXH3-64
/// of its bytes (`hashed` says whether `xxh3` is set).
struct FileFingerprint {
  FileStat stat;
  bool hashed = false;
  std::int64_t xxh3 = 0;
};

/// Fingerprints of `paths` (same order) on `threads` threads (0 = one per core). Never throws for a missing or
/// unreadable file: its FileStat says why.
std::vector<FileFingerprint> fingerprint_files(const std::vector<std::string>& paths, bool with_hash, unsigned threads);

}  // namespace fastcollect
