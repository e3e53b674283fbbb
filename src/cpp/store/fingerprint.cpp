#include "store/fingerprint.hpp"

#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/parallel.hpp"

namespace fastcollect {

FileStat stat_file(const std::string& path) {
  FileStat fs;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fs.err = errno;
    return fs;
  }
  fs.ok = S_ISREG(st.st_mode);
  if (!fs.ok) fs.err = EISDIR;
  fs.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  fs.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  fs.size = static_cast<std::int64_t>(st.st_size);
  fs.inode = static_cast<std::int64_t>(st.st_ino);
  return fs;
}

bool read_bytes(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return false;
  out = buf.str();
  return true;
}

std::int64_t xxh3_of(const std::string& bytes) {
  return static_cast<std::int64_t>(XXH3_64bits(bytes.data(), bytes.size()));
}

std::vector<FileFingerprint> fingerprint_files(const std::vector<std::string>& paths, bool with_hash,
                                               unsigned threads) {
  std::vector<FileFingerprint> out(paths.size());
  run_workers(paths.size(), threads, [&](unsigned, auto& next) {
    std::size_t i = 0;
    std::string bytes;
    while (next(i)) {
      FileFingerprint& fp = out[i];
      fp.stat = stat_file(paths[i]);
      if (with_hash && fp.stat.ok && read_bytes(paths[i], bytes)) {
        fp.xxh3 = xxh3_of(bytes);
        fp.hashed = true;
      }
    }
  });
  return out;
}

}  // namespace fastcollect
